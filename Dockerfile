# syntax=docker/dockerfile:1
#
# spendguard's container images. Two targets:
#   spendguard (the default, last stage)   docker build --build-arg VERSION=v0.1.0 -t spendguard:v0.1.0 .
#   fakevllm   (the compose quick start)   docker build --target fakevllm -t spendguard-fakevllm .
# Both are one static Go binary on distroless "static" as its nonroot user
# (65532): no shell, no package manager, nothing to patch but the binary.
# envoy/compose/compose_test.go checks the Go version below against go.mod.

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS modules
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

# CGO_ENABLED=0: a static binary, no libc needed at run time. timetzdata
# embeds the time zone database, so budgets' calendar periods in their
# timezone do not depend on the base image having one.
FROM modules AS build-spendguard
ARG TARGETOS TARGETARCH
ARG VERSION=dev
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -tags timetzdata \
      -ldflags "-s -w -X github.com/spendguard/spendguard/cmd/spendguard/app.Version=${VERSION}" \
      -o /out/spendguard ./cmd/spendguard

FROM modules AS build-fakevllm
ARG TARGETOS TARGETARCH
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags "-s -w" \
      -o /out/fakevllm ./cmd/fakevllm

FROM gcr.io/distroless/static-debian13:nonroot AS fakevllm
COPY --from=build-fakevllm /out/fakevllm /usr/local/bin/fakevllm
USER 65532:65532
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/fakevllm"]

FROM gcr.io/distroless/static-debian13:nonroot AS spendguard
ARG VERSION=dev
LABEL org.opencontainers.image.title="spendguard" \
      org.opencontainers.image.description="LLM spend budgets for vLLM, as an Envoy ext_proc sidecar" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build-spendguard /out/spendguard /usr/local/bin/spendguard
USER 65532:65532
# 50051: ext_proc gRPC (and gRPC health); 9090: admin HTTP.
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/spendguard"]
CMD ["serve"]
