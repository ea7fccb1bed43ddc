// Package static holds the gateway's CSS, images and scripts, embedded in the binary.
package static

import "embed"

// Files is served under /static/.
//
//go:embed *.css *.js
var Files embed.FS
