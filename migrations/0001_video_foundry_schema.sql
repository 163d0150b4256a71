-- The schema Video Foundry deployments already have. Every name is unqualified: the operator runs
-- the migrations with search_path set to the foundry's schema, as the foundry's owner role.
-- Roles, grants and row-level-security policies are not here: they depend on the foundry's role
-- names and are kept in shape by provisioning (src/postgres/provision.rs), which also repairs drift.

CREATE TABLE users (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email       varchar(255) NOT NULL UNIQUE,
    name        varchar(255),
    role        varchar(20) NOT NULL DEFAULT 'user',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         varchar(255) NOT NULL,
    description  text,
    settings     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_user_id_idx ON projects (user_id);

CREATE TABLE workflows (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            varchar(255) NOT NULL,
    description     text,
    definition      jsonb NOT NULL,
    execution_mode  varchar(50),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflows_user_id_idx ON workflows (user_id);

CREATE TABLE segments (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id   uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    order_index  integer NOT NULL DEFAULT 0,
    prompt       text,
    status       varchar(50) NOT NULL DEFAULT 'pending',
    output_url   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX segments_project_id_idx ON segments (project_id);

CREATE TABLE render_jobs (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id     uuid REFERENCES projects (id) ON DELETE CASCADE,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    segment_id     uuid REFERENCES segments (id) ON DELETE SET NULL,
    status         varchar(50) NOT NULL DEFAULT 'pending',
    error_message  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX render_jobs_project_id_idx ON render_jobs (project_id);
CREATE INDEX render_jobs_user_id_idx ON render_jobs (user_id);

-- Existing readers depend on exactly these columns.
CREATE TABLE audit_logs (
    id              serial PRIMARY KEY,
    timestamp       timestamptz NOT NULL DEFAULT now(),
    user_id         uuid,
    action          varchar(100) NOT NULL,
    resource_type   varchar(50),
    resource_id     varchar(255),
    details         jsonb,
    ip_address      inet,
    user_agent      text,
    execution_mode  varchar(50),
    success         boolean NOT NULL DEFAULT true
);
CREATE INDEX audit_logs_user_id_timestamp_idx ON audit_logs (user_id, timestamp);

CREATE TABLE workflow_allowlist (
    id                   serial PRIMARY KEY,
    execution_mode       varchar(50) NOT NULL,
    resource_type        varchar(50) NOT NULL,
    resource_identifier  varchar(500) NOT NULL,
    approved_by          varchar(255),
    approved_at          timestamptz NOT NULL DEFAULT now(),
    notes                text,
    metadata             jsonb,
    UNIQUE (execution_mode, resource_type, resource_identifier)
);
