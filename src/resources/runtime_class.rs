//! Which RuntimeClass a worker runs under, and the check that the cluster's RuntimeClass is what
//! the foundry expects. RuntimeClasses are cluster-scoped and installed by the cluster admin
//! (with the node's containerd configuration); the operator only checks them, so the foundry's
//! `SandboxReady` condition can say exactly what is missing.

use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::BuildError;
use crate::crd::VideoFoundry;
use crate::crd::video_foundry::{ExecutionMode, SandboxType};

/// Default gVisor RuntimeClass name.
pub const DEFAULT_GVISOR_CLASS: &str = "gvisor";
/// Default Kata Containers + Firecracker RuntimeClass name.
pub const DEFAULT_FIRECRACKER_CLASS: &str = "kata-fc";
/// The containerd handler of gVisor.
pub const GVISOR_HANDLER: &str = "runsc";

/// What a RuntimeClass must look like for the foundry's workers to be sandboxed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeClassExpectation {
    /// Name of the RuntimeClass that worker pods set.
    pub name: String,
    /// The sandbox it must provide.
    pub sandbox: SandboxType,
    /// Handler written into [`build_runtime_class`]'s reference object.
    pub handler: String,
}

impl RuntimeClassExpectation {
    /// Whether `handler` provides this sandbox. gVisor is `runsc` (or `runsc-*` variants such as
    /// an nvproxy-enabled handler, or `gvisor` as GKE Sandbox names it); Firecracker is a Kata
    /// handler naming Firecracker (`kata-fc`, `kata-firecracker`).
    pub fn accepts_handler(&self, handler: &str) -> bool {
        match self.sandbox {
            SandboxType::Gvisor => {
                handler == GVISOR_HANDLER || handler.starts_with("runsc-") || handler == "gvisor"
            }
            SandboxType::Firecracker => {
                handler.starts_with("kata")
                    && (handler.ends_with("-fc") || handler.contains("firecracker"))
            }
            SandboxType::None | SandboxType::Unknown => false,
        }
    }
}

/// Why an observed RuntimeClass does not meet its expectation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuntimeClassMismatch {
    /// No RuntimeClass of that name exists.
    #[error(
        "RuntimeClass {name} does not exist; install it with handler {handler} (see docs/sandbox.md)"
    )]
    Missing {
        /// Expected name.
        name: String,
        /// Suggested handler.
        handler: String,
    },
    /// It exists with a handler that does not provide the sandbox.
    #[error(
        "RuntimeClass {name} uses handler {found:?}, which is not a {sandbox:?} handler (expected {expected})"
    )]
    WrongHandler {
        /// Name of the RuntimeClass.
        name: String,
        /// Its handler.
        found: String,
        /// The handler expected.
        expected: String,
        /// The sandbox the foundry asks for.
        sandbox: SandboxType,
    },
}

/// The sandbox in force: the spec's `sandbox.type`, gVisor by default. `none` outside developer
/// mode is refused (the CRD's CEL rule refuses it too; this is the second lock).
pub fn effective_sandbox(foundry: &VideoFoundry) -> Result<SandboxType, BuildError> {
    let sandbox = foundry
        .spec
        .sandbox
        .as_ref()
        .and_then(|s| s.type_)
        .unwrap_or(SandboxType::Gvisor);
    match sandbox {
        SandboxType::Unknown => Err(BuildError::UnknownSetting {
            foundry: foundry.name_any(),
            field: "spec.sandbox.type",
        }),
        SandboxType::None if foundry.spec.execution_mode != ExecutionMode::Developer => {
            Err(BuildError::UnsandboxedOutsideDeveloperMode {
                foundry: foundry.name_any(),
            })
        }
        other => Ok(other),
    }
}

/// The RuntimeClasses the foundry's workers use: the CPU class first, then the GPU class when
/// one is configured (gVisor only). Empty for `sandbox.type: none`.
pub fn expected_runtime_classes(
    foundry: &VideoFoundry,
) -> Result<Vec<RuntimeClassExpectation>, BuildError> {
    let sandbox_spec = foundry.spec.sandbox.clone().unwrap_or_default();
    let sandbox = effective_sandbox(foundry)?;
    let expectation = |name: String, handler: &str| RuntimeClassExpectation {
        name,
        sandbox,
        handler: handler.to_owned(),
    };
    Ok(match sandbox {
        SandboxType::Gvisor => {
            let mut classes = vec![expectation(
                sandbox_spec
                    .runtime_class_name
                    .unwrap_or_else(|| DEFAULT_GVISOR_CLASS.to_owned()),
                GVISOR_HANDLER,
            )];
            if let Some(gpu) = sandbox_spec.gpu_runtime_class_name {
                classes.push(expectation(gpu, GVISOR_HANDLER));
            }
            classes
        }
        SandboxType::Firecracker => vec![expectation(
            sandbox_spec
                .firecracker_runtime_class_name
                .unwrap_or_else(|| DEFAULT_FIRECRACKER_CLASS.to_owned()),
            DEFAULT_FIRECRACKER_CLASS,
        )],
        SandboxType::None | SandboxType::Unknown => Vec::new(),
    })
}

/// Compares what the API server returned for the expected name (`None`: not found).
pub fn check_runtime_class(
    expected: &RuntimeClassExpectation,
    observed: Option<&RuntimeClass>,
) -> Result<(), RuntimeClassMismatch> {
    let Some(observed) = observed else {
        return Err(RuntimeClassMismatch::Missing {
            name: expected.name.clone(),
            handler: expected.handler.clone(),
        });
    };
    if expected.accepts_handler(&observed.handler) {
        Ok(())
    } else {
        Err(RuntimeClassMismatch::WrongHandler {
            name: expected.name.clone(),
            found: observed.handler.clone(),
            expected: expected.handler.clone(),
            sandbox: expected.sandbox,
        })
    }
}

/// The reference RuntimeClass an admin installs for an expectation (documentation and e2e
/// setup; the operator itself never writes cluster-scoped objects).
pub fn build_runtime_class(expected: &RuntimeClassExpectation) -> RuntimeClass {
    RuntimeClass {
        metadata: ObjectMeta {
            name: Some(expected.name.clone()),
            ..ObjectMeta::default()
        },
        handler: expected.handler.clone(),
        overhead: None,
        scheduling: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expectation(sandbox: SandboxType) -> RuntimeClassExpectation {
        RuntimeClassExpectation {
            name: "sandbox".to_owned(),
            sandbox,
            handler: "x".to_owned(),
        }
    }

    fn observed(handler: &str) -> RuntimeClass {
        RuntimeClass {
            handler: handler.to_owned(),
            ..RuntimeClass::default()
        }
    }

    #[test]
    fn gvisor_accepts_runsc_handlers_only() {
        let gvisor = expectation(SandboxType::Gvisor);
        for good in ["runsc", "runsc-nvproxy", "gvisor"] {
            assert_eq!(
                check_runtime_class(&gvisor, Some(&observed(good))),
                Ok(()),
                "{good}"
            );
        }
        for bad in ["runc", "kata-fc", "crun", "runscx"] {
            assert!(
                matches!(
                    check_runtime_class(&gvisor, Some(&observed(bad))),
                    Err(RuntimeClassMismatch::WrongHandler { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn firecracker_accepts_kata_firecracker_handlers_only() {
        let firecracker = expectation(SandboxType::Firecracker);
        assert!(check_runtime_class(&firecracker, Some(&observed("kata-fc"))).is_ok());
        assert!(check_runtime_class(&firecracker, Some(&observed("kata-firecracker"))).is_ok());
        assert!(check_runtime_class(&firecracker, Some(&observed("kata-qemu"))).is_err());
        assert!(check_runtime_class(&firecracker, Some(&observed("runsc"))).is_err());
    }

    #[test]
    fn a_missing_class_says_what_to_install() {
        let gvisor = RuntimeClassExpectation {
            name: "gvisor".to_owned(),
            sandbox: SandboxType::Gvisor,
            handler: GVISOR_HANDLER.to_owned(),
        };
        let error = check_runtime_class(&gvisor, None).unwrap_err();
        assert!(
            error.to_string().contains("gvisor does not exist"),
            "{error}"
        );
        assert!(error.to_string().contains("runsc"), "{error}");
    }
}
