# The same image `make image` writes without a container engine (tools/image): the binary, the
# shared libraries it loads, CA certificates, no shell, user 65532. For people who build with
# Docker; `make image` is the tested path.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p sagekeeper \
 && mkdir -p /out/lib64 /out/lib/x86_64-linux-gnu /out/etc/ssl/certs \
 && cp target/release/sagekeeper /out/sagekeeper \
 && for lib in $(ldd target/release/sagekeeper | grep -oE '/[^ ]+'); do mkdir -p /out$(dirname $lib) && cp -L $lib /out$lib; done \
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.source=https://github.com/sagekeeper/sagekeeper \
      org.opencontainers.image.revision=$REVISION \
      org.opencontainers.image.version=$VERSION \
      org.opencontainers.image.title=sagekeeper
COPY --from=build /out/ /
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
ENTRYPOINT ["/sagekeeper"]
CMD ["run"]
