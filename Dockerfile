# A static, non-root image. Build: docker build -t hearth .
# Run:   docker run -p 53:53/udp -p 53:53/tcp hearth

FROM rust:1-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update \
 && apt-get install -y --no-install-recommends musl-tools libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY config config
COPY benches benches
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
 && cp target/x86_64-unknown-linux-musl/release/hearth /hearth \
 # Port 53 as a non-root user: the capability travels on the file, as CoreDNS's image does.
 && setcap cap_net_bind_service=+ep /hearth

FROM scratch
COPY --from=build /hearth /hearth
COPY config/hearth.toml /etc/hearth/hearth.toml
COPY zones /etc/hearth/zones
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 53/udp 53/tcp
ENTRYPOINT ["/hearth"]
CMD ["serve", "--config", "/etc/hearth/hearth.toml", "--listen", "0.0.0.0:53"]
