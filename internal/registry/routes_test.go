package registry

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/registry/storage"
)

func TestParseRoute(t *testing.T) {
	for path, want := range map[string]route{
		"/v2/":                                  {kind: routeBase},
		"/v2/_catalog":                          {kind: routeCatalog},
		"/v2/a/b/c/tags/list":                   {kind: routeTags, name: "a/b/c"},
		"/v2/a/manifests/v1":                    {kind: routeManifest, name: "a", ref: "v1"},
		"/v2/a/manifests/b/manifests/sha256:ab": {kind: routeManifest, name: "a/manifests/b", ref: "sha256:ab"},
		"/v2/a/blobs/sha256:ab":                 {kind: routeBlob, name: "a", ref: "sha256:ab"},
		"/v2/a/blobs/uploads/":                  {kind: routeUploadStart, name: "a"},
		"/v2/a/blobs/uploads":                   {kind: routeUploadStart, name: "a"},
		"/v2/a/blobs/uploads/0123":              {kind: routeUpload, name: "a", ref: "0123"},
		"/v2/blobs/blobs/sha256:ab":             {kind: routeBlob, name: "blobs", ref: "sha256:ab"},
		"/v2/a/referrers/sha256:ab":             {kind: routeReferrers, name: "a", ref: "sha256:ab"},
		"/v2/a/unknown":                         {},
		"/v3/a/tags/list":                       {},
	} {
		got, err := parseRoute(path)
		if err != nil || got != want {
			t.Errorf("parseRoute(%q) = %+v, %v; want %+v", path, got, err, want)
		}
	}
	for _, path := range []string{"/v2/A/tags/list", "/v2/a//b/manifests/x", "/v2/../manifests/x", "/v2/" + strings.Repeat("a", 256) + "/tags/list"} {
		if _, err := parseRoute(path); err == nil || err.Code != codeNameInvalid {
			t.Errorf("parseRoute(%q) = %v, want NAME_INVALID", path, err)
		}
	}
}

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/a/b/manifests/latest", "/v2/x/blobs/uploads/abc", "/v2/_catalog", "/v2/a/referrers/sha256:00", "/v2/../../etc/passwd/tags/list"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, err := parseRoute(path)
		if err != nil {
			if err.Code != codeNameInvalid || strings.Contains(err.Message, "\n") {
				t.Fatalf("parseRoute(%q): %v", path, err)
			}
			return
		}
		if rt.kind == 0 || rt.kind == routeBase || rt.kind == routeCatalog {
			return
		}
		// A routed name is valid: no traversal, no empty component.
		if storage.ValidName(rt.name) != nil || strings.Contains(rt.name, "..") || strings.Contains(rt.ref, "/") {
			t.Fatalf("parseRoute(%q) = %+v: an invalid name or reference got through", path, rt)
		}
	})
}
