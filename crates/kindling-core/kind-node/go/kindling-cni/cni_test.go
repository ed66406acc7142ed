package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestCNIConfigIPv4(t *testing.T) {
	got, err := cniConfig([]string{"10.244.1.0/24"}, 1500)
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "cniVersion": "0.3.1",
  "name": "kindnet",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "/run/cni-ipam-state",
        "routes": [
          {
            "dst": "0.0.0.0/0"
          }
        ],
        "ranges": [
          [
            {
              "subnet": "10.244.1.0/24"
            }
          ]
        ]
      },
      "mtu": 1500
    },
    {
      "type": "portmap",
      "capabilities": {
        "portMappings": true
      }
    }
  ]
}
`
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// The dual-stack config has a range and a default route per family, and no
// mtu when eth0's is unknown.
func TestCNIConfigDualStackWithoutMTU(t *testing.T) {
	got, err := cniConfig([]string{"10.244.1.0/24", "fd00:10:244:1::/64"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var parsed map[string]any
	if err := json.Unmarshal(got, &parsed); err != nil {
		t.Fatal(err)
	}
	ptp := parsed["plugins"].([]any)[0].(map[string]any)
	if _, ok := ptp["mtu"]; ok {
		t.Fatalf("mtu set: %s", got)
	}
	pam := ptp["ipam"].(map[string]any)
	wantRoutes := []any{map[string]any{"dst": "0.0.0.0/0"}, map[string]any{"dst": "::/0"}}
	if !reflect.DeepEqual(pam["routes"], wantRoutes) {
		t.Fatalf("routes %v", pam["routes"])
	}
	wantRanges := []any{
		[]any{map[string]any{"subnet": "10.244.1.0/24"}},
		[]any{map[string]any{"subnet": "fd00:10:244:1::/64"}},
	}
	if !reflect.DeepEqual(pam["ranges"], wantRanges) {
		t.Fatalf("ranges %v", pam["ranges"])
	}
}

func TestCNIConfigIPv6OnlyAndErrors(t *testing.T) {
	got, err := cniConfig([]string{"fd00:10:244::/64"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var parsed conflist
	if err := json.Unmarshal(got, &parsed); err != nil {
		t.Fatal(err)
	}
	if routes := parsed.Plugins[0].IPAM.Routes; !reflect.DeepEqual(routes, []route{{Dst: "::/0"}}) {
		t.Fatalf("routes %v", routes)
	}
	if _, err := cniConfig(nil, 0); err == nil {
		t.Fatal("no error without a CIDR")
	}
	if _, err := cniConfig([]string{"10.244.1.0"}, 0); err == nil {
		t.Fatal("no error for a CIDR without a prefix")
	}
}

func TestWriteIfChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "10-kindnet.conflist")
	for i, want := range []bool{true, false} {
		wrote, err := writeIfChanged(path, []byte("a"))
		if err != nil || wrote != want {
			t.Fatalf("write %d: wrote %v, %v", i, wrote, err)
		}
	}
	if wrote, err := writeIfChanged(path, []byte("b")); err != nil || !wrote {
		t.Fatalf("changed: wrote %v, %v", wrote, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("left %v", entries)
	}
}

func TestSplitListAndByFamily(t *testing.T) {
	list := splitList(" 10.244.0.0/16, fd00:10:244::/56 ,")
	if !reflect.DeepEqual(list, []string{"10.244.0.0/16", "fd00:10:244::/56"}) {
		t.Fatalf("%q", list)
	}
	v4, v6, err := byFamily(list)
	if err != nil || !reflect.DeepEqual(v4, list[:1]) || !reflect.DeepEqual(v6, list[1:]) {
		t.Fatalf("%v %v %v", v4, v6, err)
	}
	if _, _, err := byFamily([]string{"nonsense"}); err == nil {
		t.Fatal("no error")
	}
}
