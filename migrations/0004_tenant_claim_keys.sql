-- Keys that sign tenant claims (src/postgres/claim.rs), stored as their HMAC-SHA-256 pads so that
-- the claim check needs no extension. Only the owner role may read this table: the function that
-- verifies claims, current_user_id(), runs as the owner (SECURITY DEFINER); no other role holds
-- any privilege on it, and provisioning keeps it that way. Provisioning writes the keys.

CREATE TABLE tenant_claim_keys (
    key_id     char(16) PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{16}$'),
    inner_pad  bytea NOT NULL CHECK (length(inner_pad) = 64),
    outer_pad  bytea NOT NULL CHECK (length(outer_pad) = 64),
    added_at   timestamptz NOT NULL DEFAULT now()
);
