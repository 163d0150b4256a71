-- What the operator records for each RenderJob custom resource. Additive only, so readers of the
-- previous version keep working.

ALTER TABLE render_jobs
    ADD COLUMN foundry          varchar(253),
    ADD COLUMN namespace        varchar(63),
    ADD COLUMN name             varchar(253),
    ADD COLUMN kubernetes_uid   uuid,
    ADD COLUMN phase            varchar(32),
    ADD COLUMN workflow_sha256  char(64),
    ADD COLUMN output_prefix    text,
    ADD COLUMN queued_at        timestamptz,
    ADD COLUMN started_at       timestamptz,
    ADD COLUMN finished_at      timestamptz,
    ADD CONSTRAINT render_jobs_workflow_sha256_hex CHECK (workflow_sha256 ~ '^[0-9a-f]{64}$'),
    ADD CONSTRAINT render_jobs_phase_known CHECK (
        phase IN ('Pending', 'Rejected', 'Queued', 'Running', 'Succeeded', 'Failed', 'Cancelled')
    );

-- One row per Kubernetes object: re-running a reconcile upserts instead of duplicating.
CREATE UNIQUE INDEX render_jobs_kubernetes_uid_key ON render_jobs (kubernetes_uid);
CREATE INDEX render_jobs_user_id_created_at_idx ON render_jobs (user_id, created_at);
