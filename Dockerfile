# syntax=docker/dockerfile:1
# A static dfns-operator binary (musl) on distroless/static: no shell, no libc, runs as non-root
# (uid 65532), fits a read-only root filesystem. Build: docker build -t dfns-operator .
# Multi-arch with buildx works as-is: each platform's build stage compiles natively for itself.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-alpine AS build
# musl-dev: the C runtime ring's assembly and C code link against; perl/make: ring's build script.
RUN apk add --no-cache musl-dev perl make
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
COPY benches ./benches
# --locked: exactly the dependency versions in Cargo.lock. Alpine's Rust target is musl, so the
# result is statically linked.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p dfns-operator --bin dfns-operator \
    && install -D -m 0755 target/release/dfns-operator /out/dfns-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/dfns-operator /usr/local/bin/dfns-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dfns-operator"]
CMD ["run", "--metrics-address=0.0.0.0:8080"]
