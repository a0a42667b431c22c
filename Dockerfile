# Slipway's container image: a static binary on a distroless base, running as non-root.
#   docker build --build-arg VERSION=$(git describe --tags --always) -t slipway .

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/slipwayhq/slipway/internal/version.version=${VERSION} -X github.com/slipwayhq/slipway/internal/version.commit=${COMMIT}" \
    -o /out/slipway ./cmd/slipway

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/slipway /usr/local/bin/slipway
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/slipway"]
CMD ["serve", "--config", "/etc/slipway/slipway.yaml"]
