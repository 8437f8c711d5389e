# syntax=docker/dockerfile:1
#
# groupd container image: built with `docker build .` or `docker compose
# build`. protobuf is compiled by the pure-Rust protox in build.rs, so the
# builder needs no protoc.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and build artifacts between builds; the
# binary is copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin groupd \
    && cp target/release/groupd /usr/local/bin/groupd

FROM debian:bookworm-slim
# Debian's bookworm packages get security fixes in place, so the package is
# not pinned to a version (hadolint DL3008).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/groupd --create-home groupd
COPY --from=builder /usr/local/bin/groupd /usr/local/bin/groupd
# The default database is SQLite at ./groupd.db, so the working directory
# belongs to the service user.
WORKDIR /var/lib/groupd
USER 10001:10001
# gRPC; and HTTP/JSON once the gateway is served.
EXPOSE 50051 8080
ENTRYPOINT ["groupd"]
