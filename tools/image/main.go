// Command image writes an OCI image archive of the sagekeeper binary without a container
// engine: one layer with the binary, exactly the shared libraries it loads (as ldd lists them)
// and CA certificates; no shell; user 65532:65532; the binary as entrypoint; OCI labels for
// source, revision and version. The Dockerfile next to it builds the same layers.
//
//	image -binary target/release/sagekeeper -out sagekeeper.oci.tar -version 0.1.0 -revision abc123
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const caBundle = "/etc/ssl/certs/ca-certificates.crt"

func main() {
	binary := flag.String("binary", "", "the sagekeeper binary")
	out := flag.String("out", "", "the OCI layout folder to write")
	version := flag.String("version", "", "the version label")
	revision := flag.String("revision", "", "the git revision label")
	source := flag.String("source", "https://github.com/sagekeeper/sagekeeper", "the source label")
	flag.Parse()
	if *binary == "" || *out == "" {
		log.Fatal("usage: image -binary PATH -out DIR [-version V] [-revision R]")
	}
	files := map[string]string{"/sagekeeper": *binary, caBundle: caBundle}
	for _, lib := range sharedLibraries(*binary) {
		files[lib] = lib
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return layerTar(files) }, tarball.WithMediaType(types.OCILayer))
	check(err)
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	check(err)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	labels := map[string]string{
		"org.opencontainers.image.source":   *source,
		"org.opencontainers.image.revision": *revision,
		"org.opencontainers.image.version":  *version,
		"org.opencontainers.image.title":    "sagekeeper",
	}
	img, err = mutate.Config(img, v1.Config{
		Entrypoint: []string{"/sagekeeper"},
		Cmd:        []string{"run"},
		User:       "65532:65532",
		Env:        []string{"SSL_CERT_FILE=" + caBundle},
		Labels:     labels,
	})
	check(err)
	img, err = mutate.CreatedAt(img, v1.Time{Time: time.Unix(0, 0).UTC()})
	check(err)
	check(os.RemoveAll(*out))
	path, err := layout.Write(*out, empty.Index)
	check(err)
	check(path.AppendImage(img))
	size, err := layer.Size()
	check(err)
	fmt.Printf("%s: %d files, layer %d bytes (compressed)\n", *out, len(files), size)
}

// sharedLibraries lists the libraries the dynamic loader maps for the binary (none for a static
// build), with the loader itself.
func sharedLibraries(binary string) []string {
	out, err := exec.Command("ldd", binary).CombinedOutput()
	if err != nil && strings.Contains(string(out), "not a dynamic executable") {
		return nil
	}
	check(err)
	var libs []string
	path := regexp.MustCompile(`(/\S+)`)
	for _, line := range strings.Split(string(out), "\n") {
		if m := path.FindString(line); m != "" {
			libs = append(libs, m)
		}
	}
	sort.Strings(libs)
	return libs
}

// layerTar writes every file (followed through symlinks) with a fixed time, root ownership
// and the folders above it.
func layerTar(files map[string]string) (io.ReadCloser, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	epoch := time.Unix(0, 0).UTC()
	dirs := map[string]bool{}
	for _, name := range names {
		for dir := filepath.Dir(name); dir != "/"; dir = filepath.Dir(dir) {
			dirs[dir] = true
		}
	}
	dirList := make([]string, 0, len(dirs))
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList)
	for _, dir := range dirList {
		hdr := &tar.Header{Name: strings.TrimPrefix(dir, "/") + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
	}
	for _, name := range names {
		data, err := os.ReadFile(files[name])
		if err != nil {
			return nil, err
		}
		mode := int64(0o644)
		if name == "/sagekeeper" || strings.Contains(name, "ld-linux") {
			mode = 0o755
		}
		hdr := &tar.Header{Name: strings.TrimPrefix(name, "/"), Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(data)), ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return io.NopCloser(&buf), nil
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
