# Multi-stage build: a static qiao binary on a distroless base, running as a non-root user.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN mkdir -p /out/home && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/qiao ./cmd/qiao

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/qiao /usr/local/bin/qiao
COPY --from=build --chown=nonroot:nonroot /out/home /var/lib/qiao
# The embedded defaults keep everything under ./data; mount a volume there (or use PostgreSQL,
# Redis and a shared keys directory for several replicas).
WORKDIR /var/lib/qiao
VOLUME /var/lib/qiao
USER nonroot:nonroot
EXPOSE 8080
# Listen on every interface of the container. The URL people reach it at cannot be guessed from
# that: set QIAO_EXTERNAL_URL (or external_url in a mounted config), or serve refuses to start.
ENV QIAO_ADDR=0.0.0.0:8080
# GET /readyz on QIAO_ADDR (no shell or curl in distroless: the binary asks).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["/usr/local/bin/qiao", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/qiao"]
CMD ["serve"]
