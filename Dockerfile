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
ENV QIAO_ADDR=0.0.0.0:8080
ENTRYPOINT ["/usr/local/bin/qiao"]
CMD ["serve"]
