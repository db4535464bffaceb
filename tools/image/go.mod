// The image tool: writes sagekeeper's OCI image without a container engine (go-containerregistry).
module local.invalid/sagekeeper-image

go 1.25.0

require github.com/google/go-containerregistry v0.21.9

require (
	github.com/klauspost/compress v1.19.1 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	golang.org/x/sync v0.22.0 // indirect
)
