# syntax=docker/dockerfile:1
#
# groupd container image: built with `docker build -t groupd .` or
# `docker compose build`. protobuf is compiled by the pure-Rust protox in
# build.rs, so the builder needs no protoc. CI checks this file with
# hadolint only: no Docker engine runs there.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and build artifacts between builds; the
# binary is copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin groupd \
    && cp target/release/groupd /usr/local/bin/groupd

# Distroless "cc": glibc, libgcc and CA certificates, which is all the binary
# links against (built on bookworm, so the same Debian 12 glibc), and no
# shell or package manager. The nonroot tag runs as uid/gid 65532, the ids
# the Kubernetes manifests (deploy/kubernetes) require.
FROM gcr.io/distroless/cc-debian12:nonroot
# The source URL is a placeholder until the repository has a public home.
LABEL org.opencontainers.image.title="groupd" \
      org.opencontainers.image.description="A gRPC group-management service with field-mask partial updates" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/OWNER/groupd"
COPY --from=builder /usr/local/bin/groupd /usr/local/bin/groupd
# The default database is SQLite at ./groupd.db, so the working directory
# is one the user owns: distroless's /home/nonroot.
WORKDIR /home/nonroot
USER 65532:65532
# glibc's allocator gives each thread that allocates an arena of its own
# (up to 8 per core); memory freed on another thread than the one that
# allocated it (SQLite's rows are read on a thread per connection, and
# freed on the runtime's) stays with the first thread's arena. Two arenas
# kept the server's peak memory under load about a quarter lower, at the
# same throughput (README, "Memory").
ENV MALLOC_ARENA_MAX=2
# gRPC; HTTP/JSON, /metrics and /openapi.json.
EXPOSE 50051 8080
ENTRYPOINT ["/usr/local/bin/groupd"]
CMD ["serve"]
