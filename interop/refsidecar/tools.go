//go:build tools

// Package refsidecar pins the reference sidecar (github.com/coatyio/dda/cmd/dda) in this
// module, so that it builds with exactly the versions of go.mod/go.sum:
//
//	go build -o <dir outside the repo>/dda github.com/coatyio/dda/cmd/dda
//
// (`go install github.com/coatyio/dda/cmd/dda@v0.43.0` does the same where the module
// proxy answers version-list queries.)
package refsidecar

import _ "github.com/coatyio/dda/cmd/dda"
