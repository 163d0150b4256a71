# Vault (OpenBao) policy of the operator's own identity: what one login needs to provision every
# foundry. Bind it to the operator's Kubernetes auth role (docs/secrets.md, "The operator's
# identity"):
#
#   bao policy write videofoundry-operator config/vault-operator-policy.hcl
#   bao write auth/kubernetes/role/videofoundry-operator \
#       bound_service_account_names=videofoundry-operator \
#       bound_service_account_namespaces=videofoundry-system \
#       token_policies=videofoundry-operator token_ttl=15m
#
# Assumes the defaults: KV version 2 at `secret/`, prefixes `videofoundry/<namespace>/<name>`,
# the database secrets engine at `database/`, Kubernetes auth at `kubernetes/`. Change the mount
# names below when the foundries set other ones (spec.vault.kvMount, pathPrefix,
# auth.kubernetes.mountPath / backendAuthMountPath). It grants nothing outside `videofoundry-*`
# names and `videofoundry/` prefixes.

# The per-foundry backend and operator policies (both endpoints: vaultrs uses the older one).
path "sys/policies/acl/videofoundry-*" {
  capabilities = ["create", "read", "update", "delete"]
}
path "sys/policy/videofoundry-*" {
  capabilities = ["create", "read", "update", "delete"]
}

# The platform backend's Kubernetes auth role of each foundry (spec.vault.backendServiceAccount).
path "auth/kubernetes/role/videofoundry-*" {
  capabilities = ["create", "read", "update", "delete"]
}

# The foundries' secrets: JWT secret, application password, API keys (check-and-set writes,
# destroying old versions after a rotation).
path "secret/data/videofoundry/*" {
  capabilities = ["create", "read", "update", "patch", "delete"]
}
path "secret/metadata/videofoundry/*" {
  capabilities = ["read", "list", "update", "delete"]
}
path "secret/destroy/videofoundry/*" {
  capabilities = ["update"]
}

# Dynamic database credentials: each foundry's connection and role, and revoking its leases.
path "database/config/videofoundry-*" {
  capabilities = ["create", "read", "update", "delete"]
}
path "database/roles/videofoundry-*" {
  capabilities = ["create", "read", "update", "delete"]
}
path "database/creds/videofoundry-*" {
  capabilities = ["read"]
}
path "sys/leases/revoke/database/creds/videofoundry-*" {
  capabilities = ["update"]
}
# Deleting a foundry with reclaimPolicy Delete revokes all of its role's leases at once (a
# sudo-protected endpoint; the path still confines it to videofoundry-* roles).
path "sys/leases/revoke-prefix/database/creds/videofoundry-*" {
  capabilities = ["update", "sudo"]
}

# Checks a token at login (also in the `default` policy, which a role may leave out).
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# Tells a missing mount from a denied path in error messages.
path "sys/internal/ui/mounts/*" {
  capabilities = ["read"]
}
