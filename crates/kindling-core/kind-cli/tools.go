//go:build tools

// Package kindbuild pins the kind CLI kindling builds into its cache when
// no kind is installed, so its dependencies come from go.sum and the build
// is reproducible.
package kindbuild

import _ "sigs.k8s.io/kind"
