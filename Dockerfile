# syntax=docker/dockerfile:1
# A static, non-root image of Hearth.
#   Build: docker build -t hearth:0.1.0 .
#   Run:   docker run --rm -p 53:53/udp -p 53:53/tcp -p 8080:8080 hearth:0.1.0
# The configuration inside is config/examples/container.toml (listen 0.0.0.0:53, admin endpoints
# on 0.0.0.0:8080, the example zones); mount another over /etc/hearth/hearth.toml to replace it.
# .ci/deploy-check runs this file's `cargo build` line, so CI proves the build without Docker.

FROM rust:1.95-bookworm AS build
# musl-tools: ring (rustls, for the Kubernetes API client) compiles C, and needs musl-gcc.
# libcap2-bin: setcap. Versions are not pinned: Debian stable only takes security fixes.
# hadolint ignore=DL3008
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update \
 && apt-get install -y --no-install-recommends musl-tools libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Cargo reads every target the manifest names, so benches/ (a bench and a feature-gated binary)
# is needed to build even though neither is built.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY config ./config
# The cache mounts keep crates and compiled dependencies between builds; the binary is copied out
# in the same step, since the mounted target/ is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-musl \
 && cp target/x86_64-unknown-linux-musl/release/hearth /hearth \
 # Port 53 as a non-root user: the capability travels on the file, as in CoreDNS's image. It
 # needs NET_BIND_SERVICE in the container's bounding set (Docker's default set has it).
 && setcap cap_net_bind_service=+ep /hearth

# distroless static: no shell, no libc; /etc/passwd names 65532 (nonroot), CA certificates, /tmp.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /hearth /usr/local/bin/hearth
COPY config/examples/container.toml /etc/hearth/hearth.toml
COPY zones /etc/hearth/zones
WORKDIR /etc/hearth
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
EXPOSE 53/udp 53/tcp 8080/tcp
ENTRYPOINT ["/usr/local/bin/hearth"]
CMD ["serve", "--config", "/etc/hearth/hearth.toml"]
