//! Storage isolation against a real Ceph RADOS Gateway (`scripts/services/ceph-rgw.sh start`):
//! two foundries share one bucket, each with its own tenant principal and prefix. Proves the
//! hardening reads back, that each principal and each presigned URL stays inside its prefix,
//! that anonymous and public access are refused, and that ensure is idempotent and repairs
//! drift. Skipped without the gateway (VF_TEST_S3_ENDPOINT unset).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketCannedAcl, BucketVersioningStatus, ObjectCannedAcl};
use secrecy::SecretString;
use serde_json::json;
use videofoundry::storage::presign::WorkerAccessRequest;
use videofoundry::storage::{
    Area, EncryptionState, FoundryStorage, ObjectEncryption, S3Connection, S3Storage, StorageError,
    TenantScope,
};

const USER_A: &str = "0b7e4a1c-51f2-4c0e-9d55-3f1b8f6a2c10";
const USER_B: &str = "7d3f9e20-6a4b-4c8d-8e1f-2b5c7a9d0e31";

/// The gateway and its three principals.
struct Rgw {
    endpoint: String,
    plain_endpoint: String,
    ca_pem: Vec<u8>,
    kms_key_id: String,
}

struct Principal {
    arn: String,
    access_key_id: String,
    secret: String,
}

fn rgw() -> Option<Rgw> {
    let endpoint = common::service_env("VF_TEST_S3_ENDPOINT")?;
    let ca_file = std::env::var("VF_TEST_S3_CA_FILE").unwrap();
    Some(Rgw {
        endpoint,
        plain_endpoint: std::env::var("VF_TEST_S3_PLAIN_ENDPOINT").unwrap(),
        ca_pem: std::fs::read(ca_file).unwrap(),
        kms_key_id: std::env::var("VF_TEST_S3_KMS_KEY_ID").unwrap(),
    })
}

fn principal(name: &str) -> Principal {
    let var = |suffix: &str| std::env::var(format!("VF_TEST_S3_{name}_{suffix}")).unwrap();
    Principal {
        arn: var("ARN"),
        access_key_id: var("ACCESS_KEY_ID"),
        secret: var("SECRET_ACCESS_KEY"),
    }
}

impl Rgw {
    fn connection(&self, who: &Principal) -> S3Connection {
        S3Connection {
            endpoint: self.endpoint.clone(),
            region: "us-east-1".to_owned(),
            force_path_style: true,
            access_key_id: who.access_key_id.clone(),
            secret_access_key: SecretString::from(who.secret.clone()),
            extra_ca_pem: Some(self.ca_pem.clone()),
        }
    }

    fn storage(&self, who: &Principal) -> S3Storage {
        S3Storage::new(&self.connection(who)).unwrap()
    }

    fn plain_storage(&self, who: &Principal) -> S3Storage {
        let mut connection = self.connection(who);
        connection.endpoint = self.plain_endpoint.clone();
        S3Storage::new(&connection).unwrap()
    }

    fn http(&self) -> reqwest::Client {
        videofoundry::install_crypto_provider();
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&self.ca_pem).unwrap())
            .build()
            .unwrap()
    }
}

fn unique_bucket(tag: &str) -> String {
    format!(
        "vf-{tag}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn foundry(name: &str, bucket: &str, prefix: &str, tenant: &Principal) -> FoundryStorage {
    FoundryStorage::hardened(
        &videofoundry::storage::foundry::foundry_id("tests", name),
        bucket,
        "us-east-1",
        prefix,
        Some(&tenant.arn),
    )
}

/// A shared bucket with foundry A (`studio-a/`, tenant A) and foundry B (`studio-b/`, tenant B).
async fn shared_bucket(rgw: &Rgw) -> (S3Storage, FoundryStorage, FoundryStorage) {
    let admin = rgw.storage(&principal("ADMIN"));
    let bucket = unique_bucket("shared");
    let a = foundry("studio-a", &bucket, "studio-a/", &principal("TENANT_A"));
    let b = foundry("studio-b", &bucket, "studio-b/", &principal("TENANT_B"));
    admin.ensure(&a).await.unwrap();
    admin.ensure(&b).await.unwrap();
    (admin, a, b)
}

async fn put(storage: &S3Storage, bucket: &str, key: &str) -> Result<(), String> {
    storage
        .client()
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(b"frame"))
        .send()
        .await
        .map(drop)
        .map_err(|e| format!("{:?}", e.raw_response().map(|r| r.status().as_u16())))
}

fn status_of<T, E>(
    result: Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) -> u16 {
    match result {
        Ok(_) => 200,
        Err(e) => e.raw_response().map_or(0, |r| r.status().as_u16()),
    }
}

#[tokio::test]
async fn hardening_reads_back_and_a_second_ensure_changes_nothing() {
    let Some(rgw) = rgw() else { return };
    let (admin, a, b) = shared_bucket(&rgw).await;

    let versioning = admin
        .client()
        .get_bucket_versioning()
        .bucket(&a.bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(versioning.status(), Some(&BucketVersioningStatus::Enabled));
    // All four flags, or (Ceph RGW 16, whose BlockPublicAcls refuses every upload) the other
    // three with the workaround reported.
    let block = admin.public_access_block(&a.bucket).await.unwrap();
    let report = admin.ensure(&a).await.unwrap();
    if block != [true; 4] {
        assert_eq!(block, videofoundry::storage::ensure::UPLOAD_SAFE_BLOCK);
        assert_eq!(report.provider_workarounds.len(), 1, "{report:?}");
    }
    let policy = admin.bucket_policy(&a.bucket).await.unwrap().unwrap();
    let sids: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap())
        .collect();
    for sid in videofoundry::storage::policy::TLS_SIDS {
        assert_eq!(sids.iter().filter(|s| **s == sid).count(), 1, "{sids:?}");
    }
    for id in [&a.id, &b.id] {
        for suffix in [
            "TenantObjects",
            "TenantList",
            "TenantDenyOutsidePrefix",
            "TenantDenyListOutsidePrefix",
        ] {
            assert!(sids.contains(&format!("{id}{suffix}").as_str()), "{sids:?}");
        }
    }
    let rules = admin.lifecycle_rules(&a.bucket).await.unwrap();
    let ids: Vec<&str> = rules.iter().filter_map(|r| r.id()).collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    let shapes: Vec<_> = rules
        .iter()
        .filter_map(videofoundry::storage::lifecycle::shape_of)
        .collect();
    for rule in videofoundry::storage::lifecycle::foundry_rules(&a) {
        assert!(shapes.contains(&rule), "{rule:?} not in {shapes:?}");
    }

    // Nothing drifted: nothing changes, for either foundry.
    for storage in [&a, &b] {
        let report = admin.ensure(storage).await.unwrap();
        assert!(report.changes.is_empty(), "{:?}", report.changes);
        // Ceph RGW 16 has no PutBucketEncryption: reported, and production fails closed.
        assert_eq!(report.encryption, EncryptionState::Unsupported);
        let condition = report.condition(storage);
        assert!(!condition.ready);
        assert_eq!(condition.reason, "EncryptionUnsupported");
    }
    let mut per_object = a.clone();
    per_object.per_object_encryption = true;
    let report = admin.ensure(&per_object).await.unwrap();
    assert!(report.condition(&per_object).ready);
}

#[tokio::test]
async fn ensure_repairs_drift_and_then_settles() {
    let Some(rgw) = rgw() else { return };
    let (admin, a, b) = shared_bucket(&rgw).await;
    let client = admin.client();
    client
        .put_bucket_versioning()
        .bucket(&a.bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .unwrap();
    client
        .delete_bucket_lifecycle()
        .bucket(&a.bucket)
        .send()
        .await
        .unwrap();
    client
        .delete_public_access_block()
        .bucket(&a.bucket)
        .send()
        .await
        .unwrap();
    // Someone widened foundry A's statements by hand (dropped the deny outside the prefix).
    let mut policy = admin.bucket_policy(&a.bucket).await.unwrap().unwrap();
    let deny = format!("{}TenantDenyOutsidePrefix", a.id);
    policy["Statement"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["Sid"] != deny.as_str());
    client
        .put_bucket_policy()
        .bucket(&a.bucket)
        .policy(policy.to_string())
        .send()
        .await
        .unwrap();

    let report = admin.ensure(&a).await.unwrap();
    assert_eq!(
        report.changes,
        [
            "enabled versioning",
            "repaired the bucket policy",
            "blocked public access",
            "set lifecycle rules"
        ]
    );
    // B's lifecycle rules were deleted with the rest; its own ensure restores them.
    let report_b = admin.ensure(&b).await.unwrap();
    assert_eq!(report_b.changes, ["set lifecycle rules"]);
    for storage in [&a, &b] {
        assert!(admin.ensure(storage).await.unwrap().changes.is_empty());
    }
}

#[tokio::test]
async fn each_principal_is_confined_to_its_own_prefix() {
    let Some(rgw) = rgw() else { return };
    let (admin, a, b) = shared_bucket(&rgw).await;
    let bucket = &a.bucket;
    let tenant_a = rgw.storage(&principal("TENANT_A"));
    let tenant_b = rgw.storage(&principal("TENANT_B"));
    let a_key = TenantScope::new(&a.prefix, USER_A)
        .unwrap()
        .key(Area::Uploads, "clip.mp4")
        .unwrap();
    let b_key = TenantScope::new(&b.prefix, USER_B)
        .unwrap()
        .key(Area::Uploads, "clip.mp4")
        .unwrap();
    put(&admin, bucket, "outside/root.txt").await.unwrap();

    for (own, own_key, other_key, other_prefix) in [
        (&tenant_a, &a_key, &b_key, &b.prefix),
        (&tenant_b, &b_key, &a_key, &a.prefix),
    ] {
        let client = own.client();
        // Allowed on its own prefix: PUT, GET, LIST, DELETE.
        put(own, bucket, own_key.as_str()).await.unwrap();
        let got = client
            .get_object()
            .bucket(bucket)
            .key(own_key.as_str())
            .send()
            .await;
        assert_eq!(status_of(got), 200);
        let own_prefix = own_key.as_str().split("users/").next().unwrap();
        let listed = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(own_prefix)
            .send()
            .await
            .unwrap();
        assert!(
            listed
                .contents()
                .iter()
                .any(|o| o.key() == Some(own_key.as_str()))
        );

        // Denied on the other foundry's prefix, and outside every prefix.
        assert_eq!(
            put(own, bucket, other_key.as_str()).await,
            Err("Some(403)".to_owned())
        );
        for key in [other_key.as_str(), "outside/root.txt"] {
            let get = client.get_object().bucket(bucket).key(key).send().await;
            assert_eq!(status_of(get), 403, "GET {key}");
            let delete = client.delete_object().bucket(bucket).key(key).send().await;
            assert_eq!(status_of(delete), 403, "DELETE {key}");
        }
        for prefix in [other_prefix.as_str(), "", "outside/"] {
            let list = client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .send()
                .await;
            assert_eq!(status_of(list), 403, "LIST {prefix:?}");
            let versions = client
                .list_object_versions()
                .bucket(bucket)
                .prefix(prefix)
                .send()
                .await;
            assert_eq!(status_of(versions), 403, "LIST versions {prefix:?}");
        }
        let uploads = client.list_multipart_uploads().bucket(bucket).send().await;
        assert_eq!(status_of(uploads), 403, "LIST multipart uploads");
        // Copying the other tenant's object into its own prefix needs GET on the source.
        let copy = client
            .copy_object()
            .bucket(bucket)
            .copy_source(format!("{bucket}/{other_key}"))
            .key(format!("{own_prefix}users/stolen"))
            .send()
            .await;
        assert_eq!(status_of(copy), 403, "COPY from the other prefix");
        let acl = client
            .get_object_acl()
            .bucket(bucket)
            .key(other_key.as_str())
            .send()
            .await;
        assert_eq!(status_of(acl), 403, "GET ACL");
        // Nor can it change the bucket's settings.
        let policy = client
            .put_bucket_policy()
            .bucket(bucket)
            .policy(json!({"Version": "2012-10-17", "Statement": []}).to_string())
            .send()
            .await;
        assert_eq!(status_of(policy), 403);

        let delete = client
            .delete_object()
            .bucket(bucket)
            .key(own_key.as_str())
            .send()
            .await;
        assert!([200, 204].contains(&status_of(delete)));
    }
    // The other tenant's object survived every attempt.
    let got = admin
        .client()
        .get_object()
        .bucket(bucket)
        .key(b_key.as_str())
        .send()
        .await;
    assert_eq!(status_of(got), 404, "B deleted its own object last");
}

#[tokio::test]
async fn plain_http_is_denied_by_the_tls_statement() {
    let Some(rgw) = rgw() else { return };
    let (_admin, a, _b) = shared_bucket(&rgw).await;
    let tenant_a = principal("TENANT_A");
    let key = TenantScope::new(&a.prefix, USER_A)
        .unwrap()
        .key(Area::Uploads, "over-tls.bin")
        .unwrap();
    put(&rgw.storage(&tenant_a), &a.bucket, key.as_str())
        .await
        .unwrap();
    let plain = rgw.plain_storage(&tenant_a);
    assert_eq!(
        put(&plain, &a.bucket, key.as_str()).await,
        Err("Some(403)".to_owned())
    );
    let get = plain
        .client()
        .get_object()
        .bucket(&a.bucket)
        .key(key.as_str())
        .send()
        .await;
    assert_eq!(status_of(get), 403);
}

#[tokio::test]
async fn anonymous_and_public_access_are_refused() {
    let Some(rgw) = rgw() else { return };
    let (admin, a, _b) = shared_bucket(&rgw).await;
    let bucket = &a.bucket;
    let key = TenantScope::new(&a.prefix, USER_A)
        .unwrap()
        .key(Area::Uploads, "private.png")
        .unwrap();
    put(&admin, bucket, key.as_str()).await.unwrap();
    let http = rgw.http();
    let object_url = format!("{}/{bucket}/{key}", rgw.endpoint);
    let bucket_url = format!("{}/{bucket}", rgw.endpoint);
    assert_eq!(http.get(&object_url).send().await.unwrap().status(), 403);
    assert_eq!(
        http.put(&object_url)
            .body("x")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(http.delete(&object_url).send().await.unwrap().status(), 403);
    assert_eq!(http.get(&bucket_url).send().await.unwrap().status(), 403);

    // A public policy is refused by the public access block.
    let public = json!({
        "Version": "2012-10-17",
        "Statement": [{"Sid": "Public", "Effect": "Allow", "Principal": "*",
                       "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/*")}]
    });
    let put_policy = admin
        .client()
        .put_bucket_policy()
        .bucket(bucket)
        .policy(public.to_string())
        .send()
        .await;
    assert_eq!(status_of(put_policy), 403);
    // Public ACLs on the bucket and on objects are refused (BlockPublicAcls) or, where the
    // provider needs that flag off, accepted and ignored (IgnorePublicAcls): either way
    // anonymous requests stay denied.
    let bucket_acl = admin
        .client()
        .put_bucket_acl()
        .bucket(bucket)
        .acl(BucketCannedAcl::PublicReadWrite)
        .send()
        .await;
    let object_acl = admin
        .client()
        .put_object_acl()
        .bucket(bucket)
        .key(key.as_str())
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await;
    let refused = [status_of(bucket_acl), status_of(object_acl)];
    if admin.public_access_block(bucket).await.unwrap()[0] {
        assert_eq!(refused, [403, 403]);
    }
    assert_eq!(http.get(&object_url).send().await.unwrap().status(), 403);
    assert_eq!(http.get(&bucket_url).send().await.unwrap().status(), 403);
    assert_eq!(
        http.put(format!("{bucket_url}/anonymous.txt"))
            .body("x")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
}

async fn send(
    http: &reqwest::Client,
    request: &videofoundry::storage::PresignedRequest,
    url: &str,
    body: &'static [u8],
) -> u16 {
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap();
    let mut builder = http.request(method, url);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    if request.method == "PUT" {
        builder = builder.body(body);
    }
    builder.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn presigned_worker_access_stays_in_the_render_prefix() {
    let Some(rgw) = rgw() else { return };
    let (admin, a, _b) = shared_bucket(&rgw).await;
    let scope = TenantScope::new(&a.prefix, USER_A).unwrap();
    let input = scope.key(Area::Uploads, "input.png").unwrap();
    put(&admin, &a.bucket, input.as_str()).await.unwrap();
    let http = rgw.http();

    // URLs signed by the operator and by the (confined) tenant principal behave the same.
    for signer in [admin.clone(), rgw.storage(&principal("TENANT_A"))] {
        let inputs = vec![format!("users/{USER_A}/uploads/input.png")];
        let outputs = vec!["video.mp4".to_owned(), "frames/0001.png".to_owned()];
        let access = signer
            .worker_access(&WorkerAccessRequest {
                bucket: &a.bucket,
                scope: &scope,
                render_job: "job-1",
                inputs: &inputs,
                outputs: &outputs,
                lifetime: Duration::from_secs(600),
                encryption: None,
            })
            .await
            .unwrap();
        assert_eq!(
            access.output_prefix,
            format!("studio-a/users/{USER_A}/renders/job-1/")
        );
        let get = &access.inputs[0];
        assert_eq!(send(&http, get, &get.url, b"").await, 200);
        let upload = &access.outputs[0];
        assert!(upload.key.as_str().starts_with(&access.output_prefix));
        assert_eq!(send(&http, upload, &upload.url, b"rendered").await, 200);

        // The same access aimed elsewhere: another render, the uploads area, another user,
        // another foundry, a GET with a PUT URL, a tampered signature or expiry.
        let elsewhere = [
            upload.url.replace("/renders/job-1/", "/renders/job-2/"),
            upload
                .url
                .replace("/renders/job-1/video.mp4", "/uploads/video.mp4"),
            upload.url.replace(USER_A, USER_B),
            upload.url.replace("/studio-a/", "/studio-b/"),
            upload
                .url
                .replace("X-Amz-Expires=600", "X-Amz-Expires=6000"),
            tamper_signature(&upload.url),
        ];
        for url in &elsewhere {
            assert_ne!(url, &upload.url);
            assert_eq!(send(&http, upload, url, b"escape").await, 403, "{url}");
        }
        let as_get = videofoundry::storage::PresignedRequest {
            method: "GET".to_owned(),
            ..upload.clone()
        };
        assert_eq!(send(&http, &as_get, &upload.url, b"").await, 403);
        assert_eq!(
            send(&http, get, &tamper_signature(&get.url), b"").await,
            403
        );
    }

    // Inputs must exist and lie under the user's prefix.
    let missing = vec![format!("users/{USER_A}/uploads/missing.png")];
    let error = admin
        .worker_access(&WorkerAccessRequest {
            bucket: &a.bucket,
            scope: &scope,
            render_job: "job-1",
            inputs: &missing,
            outputs: &[],
            lifetime: Duration::from_secs(60),
            encryption: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::InputMissing { index: 0 }));
    let foreign = vec![format!("users/{USER_B}/uploads/input.png")];
    let error = admin
        .worker_access(&WorkerAccessRequest {
            bucket: &a.bucket,
            scope: &scope,
            render_job: "job-1",
            inputs: &foreign,
            outputs: &[],
            lifetime: Duration::from_secs(60),
            encryption: None,
        })
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "InvalidKey");
}

fn tamper_signature(url: &str) -> String {
    let (head, signature) = url.split_once("X-Amz-Signature=").unwrap();
    let flipped: String = signature
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                if c == '0' { '1' } else { '0' }
            } else {
                c
            }
        })
        .collect();
    format!("{head}X-Amz-Signature={flipped}")
}

#[tokio::test]
async fn a_presigned_upload_works_until_it_expires() {
    let Some(rgw) = rgw() else { return };
    let (admin, a, _b) = shared_bucket(&rgw).await;
    let scope = TenantScope::new(&a.prefix, USER_A).unwrap();
    let outputs = vec!["late.mp4".to_owned()];
    let lifetime = Duration::from_secs(4);
    let access = admin
        .worker_access(&WorkerAccessRequest {
            bucket: &a.bucket,
            scope: &scope,
            render_job: "job-expiry",
            inputs: &[],
            outputs: &outputs,
            lifetime,
            encryption: None,
        })
        .await
        .unwrap();
    let http = rgw.http();
    let upload = &access.outputs[0];
    assert_eq!(send(&http, upload, &upload.url, b"in time").await, 200);
    // Expiry is the behaviour under test: keep using the URL, on the gateway's clock, until it
    // is refused. It must be refused, not before its expiry (less the second SigV4 truncates
    // from its start time) and not long after.
    let give_up = Instant::now() + lifetime + Duration::from_secs(30);
    loop {
        let status = send(&http, upload, &upload.url, b"late").await;
        if status == 403 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            Instant::now() < give_up,
            "the URL still works long after its expiry"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let refused_at = SystemTime::now();
    assert!(
        refused_at + Duration::from_secs(1) >= access.expires_at,
        "refused before its expiry"
    );
}

#[tokio::test]
async fn per_object_encryption_is_signed_into_uploads() {
    let Some(rgw) = rgw() else { return };
    let (admin, a, _b) = shared_bucket(&rgw).await;
    let scope = TenantScope::new(&a.prefix, USER_A).unwrap();
    let outputs = vec!["sealed.mp4".to_owned()];
    let access = admin
        .worker_access(&WorkerAccessRequest {
            bucket: &a.bucket,
            scope: &scope,
            render_job: "job-sse",
            inputs: &[],
            outputs: &outputs,
            lifetime: Duration::from_secs(300),
            encryption: Some(ObjectEncryption::Kms {
                key_id: rgw.kms_key_id.clone(),
            }),
        })
        .await
        .unwrap();
    let upload = &access.outputs[0];
    assert!(
        upload
            .headers
            .iter()
            .any(|(n, v)| n == "x-amz-server-side-encryption" && v == "aws:kms"),
        "{:?}",
        upload.headers
    );
    let http = rgw.http();
    assert_eq!(
        send(&http, upload, &upload.url, b"secret frames").await,
        200
    );
    // Without the signed headers the same URL is refused.
    let bare = videofoundry::storage::PresignedRequest {
        headers: Vec::new(),
        ..upload.clone()
    };
    assert_eq!(send(&http, &bare, &upload.url, b"plain").await, 403);
    let head = admin
        .client()
        .head_object()
        .bucket(&a.bucket)
        .key(upload.key.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&aws_sdk_s3::types::ServerSideEncryption::AwsKms)
    );
}

#[tokio::test]
async fn failures_map_to_reasons_without_credentials() {
    let Some(rgw) = rgw() else { return };
    let admin_principal = principal("ADMIN");
    let (_admin, a, _b) = shared_bucket(&rgw).await;

    // Wrong secret.
    let mut wrong = rgw.connection(&admin_principal);
    wrong.secret_access_key = SecretString::from("not-the-secret-0123456789".to_owned());
    let error = S3Storage::new(&wrong)
        .unwrap()
        .ensure(&a)
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "InvalidCredentials", "{error}");
    // Unknown key id.
    let mut unknown = rgw.connection(&admin_principal);
    unknown.access_key_id = "AKIAUNKNOWNKEY000000".to_owned();
    let error_unknown = S3Storage::new(&unknown)
        .unwrap()
        .ensure(&a)
        .await
        .unwrap_err();
    assert_eq!(
        error_unknown.reason(),
        "InvalidCredentials",
        "{error_unknown}"
    );
    // Unreachable endpoint.
    let mut nowhere = rgw.connection(&admin_principal);
    nowhere.endpoint = "https://127.0.0.1:1".to_owned();
    let unreachable = S3Storage::new(&nowhere)
        .unwrap()
        .ensure(&a)
        .await
        .unwrap_err();
    assert_eq!(unreachable.reason(), "EndpointUnreachable", "{unreachable}");
    // A bucket owned by another account (the admin's bucket, seen by tenant B).
    let stranger = rgw.storage(&principal("TENANT_B"));
    let owned = stranger.ensure(&a).await.unwrap_err();
    assert_eq!(owned.reason(), "BucketOwnedByAnotherAccount", "{owned}");

    for error in [&error, &error_unknown, &unreachable, &owned] {
        let text = format!("{error} {error:?}");
        for secret in [
            admin_principal.access_key_id.as_str(),
            admin_principal.secret.as_str(),
            "not-the-secret-0123456789",
            "AKIAUNKNOWNKEY000000",
        ] {
            assert!(!text.contains(secret), "credential in {text}");
        }
    }
    let debug = format!(
        "{:?} {:?}",
        rgw.connection(&admin_principal),
        rgw.storage(&admin_principal)
    );
    assert!(!debug.contains(&admin_principal.secret));
    assert!(!debug.contains(&admin_principal.access_key_id));
}

#[tokio::test]
async fn a_shared_policy_stops_at_the_size_limit() {
    let Some(rgw) = rgw() else { return };
    let admin = rgw.storage(&principal("ADMIN"));
    let bucket = unique_bucket("limit");
    let tenant = principal("TENANT_A");
    let mut accepted = 0;
    let error = loop {
        // Each foundry has its own principal (they need not exist for the policy to be stored).
        let tenant = Principal {
            arn: format!("{}-{accepted:03}", tenant.arn),
            ..principal("TENANT_A")
        };
        let storage = foundry(
            &format!("studio-{accepted:03}"),
            &bucket,
            &format!("studio-{accepted:03}/"),
            &tenant,
        );
        match admin.ensure(&storage).await {
            Ok(report) => {
                assert!(
                    report.policy_bytes <= videofoundry::storage::policy::AWS_POLICY_LIMIT_BYTES
                );
                accepted += 1;
            }
            Err(error) => break error,
        }
        assert!(accepted < 100, "the policy never reached the limit");
    };
    assert_eq!(error.reason(), "PolicyTooLarge", "{error}");
    eprintln!("foundries sharing one bucket before the 20 KB policy limit: {accepted}");
    // The foundries already in the bucket are unaffected.
    let first_tenant = Principal {
        arn: format!("{}-000", tenant.arn),
        ..principal("TENANT_A")
    };
    let first = foundry("studio-000", &bucket, "studio-000/", &first_tenant);
    assert!(admin.ensure(&first).await.unwrap().changes.is_empty());
}

#[tokio::test]
async fn temp_uploads_carry_the_lifecycle_tag() {
    let Some(rgw) = rgw() else { return };
    let (admin, a, _b) = shared_bucket(&rgw).await;
    let scope = TenantScope::new(&a.prefix, USER_A).unwrap();
    let upload = admin
        .presign_user_upload(
            &a.bucket,
            &scope,
            Area::Temp,
            "scratch/latent.bin",
            Duration::from_secs(120),
            None,
        )
        .await
        .unwrap();
    let http = rgw.http();
    assert_eq!(send(&http, &upload, &upload.url, b"scratch").await, 200);
    let tags = admin
        .client()
        .get_object_tagging()
        .bucket(&a.bucket)
        .key(upload.key.as_str())
        .send()
        .await
        .unwrap();
    let (key, value) = videofoundry::storage::keys::TEMP_TAG;
    assert!(
        tags.tag_set()
            .iter()
            .any(|t| t.key() == key && t.value() == value),
        "{:?}",
        tags.tag_set()
    );
    // Without the signed tag header the URL is refused.
    let untagged = videofoundry::storage::PresignedRequest {
        headers: Vec::new(),
        ..upload.clone()
    };
    assert_eq!(send(&http, &untagged, &upload.url, b"untagged").await, 403);
    // And the same API refuses an escape before signing anything.
    let escape = admin
        .presign_user_upload(
            &a.bucket,
            &scope,
            Area::Temp,
            "../../x",
            Duration::from_secs(60),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(escape.reason(), "InvalidKey");
}

#[tokio::test]
async fn a_grant_elsewhere_does_not_widen_the_confinement() {
    let Some(rgw) = rgw() else { return };
    let (admin, a, _b) = shared_bucket(&rgw).await;
    let tenant_a = principal("TENANT_A");
    // The bucket owner (or an IAM policy, on AWS) grants tenant A more than its prefix.
    let mut policy = admin.bucket_policy(&a.bucket).await.unwrap().unwrap();
    policy["Statement"].as_array_mut().unwrap().push(json!({
        "Sid": "OwnerGrant",
        "Effect": "Allow",
        "Principal": {"AWS": [tenant_a.arn]},
        "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
        "Resource": [format!("arn:aws:s3:::{}", a.bucket), format!("arn:aws:s3:::{}/*", a.bucket)]
    }));
    admin
        .client()
        .delete_public_access_block()
        .bucket(&a.bucket)
        .send()
        .await
        .unwrap();
    admin
        .client()
        .put_bucket_policy()
        .bucket(&a.bucket)
        .policy(policy.to_string())
        .send()
        .await
        .unwrap();
    let storage = rgw.storage(&tenant_a);
    assert_eq!(
        put(&storage, &a.bucket, "studio-b/grabbed").await,
        Err("Some(403)".to_owned())
    );
    assert_eq!(
        put(&storage, &a.bucket, "elsewhere").await,
        Err("Some(403)".to_owned())
    );
    let list = storage
        .client()
        .list_objects_v2()
        .bucket(&a.bucket)
        .send()
        .await;
    assert_eq!(status_of(list), 403);
    // Its own prefix still works.
    put(&storage, &a.bucket, "studio-a/own").await.unwrap();
    // The operator keeps the owner's statement, and ensure re-blocks public access.
    assert_eq!(
        admin.ensure(&a).await.unwrap().changes,
        ["blocked public access"]
    );

    // A second foundry in the bucket may not reuse tenant A as its principal.
    let c = foundry("studio-c", &a.bucket, "studio-c/", &tenant_a);
    let error = admin.ensure(&c).await.unwrap_err();
    assert_eq!(error.reason(), "InvalidConfiguration", "{error}");
}
