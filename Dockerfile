# syntax=docker/dockerfile:1
# Multi-stage build: a static musl binary in a distroless image with no shell, running as
# UID 65532. Not built in this repository's CI (no Docker engine runs there); build it with
#   docker build -t videofoundry-operator .

FROM rust:1.95-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY config ./config
# Declared [[bench]] targets must exist for cargo to read the manifest.
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-musl --bin videofoundry-operator \
 && cp target/x86_64-unknown-linux-musl/release/videofoundry-operator /videofoundry-operator

# distroless/static:nonroot — no shell, no package manager, UID/GID 65532.
# Pin the digest in your registry mirror (e.g. gcr.io/distroless/static-debian12:nonroot@sha256:...).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /videofoundry-operator /usr/local/bin/videofoundry-operator
COPY config/operator.yaml /etc/videofoundry/operator.yaml
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/videofoundry-operator"]
CMD ["run", "--config", "/etc/videofoundry/operator.yaml"]
