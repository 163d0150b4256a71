//! How the operator reaches an S3 endpoint: address, region, addressing style, credentials and
//! (for self-hosted gateways) an extra CA certificate. Builds `aws-sdk-s3` clients on rustls.

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use secrecy::{ExposeSecret, SecretString};

use super::error::StorageError;

/// An S3 endpoint and the credentials to use there.
#[derive(Clone)]
pub struct S3Connection {
    /// Endpoint URL (`https://s3.us-east-1.amazonaws.com`, `https://rgw.example:7443`).
    pub endpoint: String,
    /// Signing region.
    pub region: String,
    /// Path-style addressing (`https://host/bucket/key`), needed by most self-hosted gateways.
    pub force_path_style: bool,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: SecretString,
    /// PEM CA certificates to trust besides the system roots (self-hosted gateways).
    pub extra_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for S3Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Connection")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("force_path_style", &self.force_path_style)
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field("extra_ca_pem", &self.extra_ca_pem.as_ref().map(Vec::len))
            .finish()
    }
}

impl S3Connection {
    /// The connection a foundry's `spec.storage` describes, with the provisioning credentials
    /// read from its `credentialsSecretRef` (`accessKeyId`, `secretAccessKey`).
    pub fn from_spec(
        storage: &crate::crd::video_foundry::StorageSpec,
        access_key_id: String,
        secret_access_key: SecretString,
        extra_ca_pem: Option<Vec<u8>>,
    ) -> Self {
        Self {
            endpoint: storage.endpoint.clone(),
            region: storage.region.clone(),
            force_path_style: storage.force_path_style,
            access_key_id,
            secret_access_key,
            extra_ca_pem,
        }
    }

    /// An `aws-sdk-s3` client for this connection.
    pub fn client(&self) -> Result<aws_sdk_s3::Client, StorageError> {
        crate::install_crypto_provider();
        let mut trust = TrustStore::empty().with_native_roots(true);
        if let Some(pem) = &self.extra_ca_pem {
            trust = trust.with_pem_certificate(pem.clone());
        }
        let tls_context = TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .map_err(|e| StorageError::Config(format!("TLS settings: {e}")))?;
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .tls_context(tls_context)
            .build_https();
        let credentials = Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.expose_secret().to_owned(),
            None,
            None,
            "videofoundry",
        );
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new(self.region.clone()))
            .force_path_style(self.force_path_style)
            .credentials_provider(credentials)
            .http_client(http_client)
            // Checksums only where S3 requires them: self-hosted gateways (Ceph RGW 16) reject
            // the aws-chunked trailing checksums newer SDKs send by default.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Ok(aws_sdk_s3::Client::from_conf(config))
    }
}
