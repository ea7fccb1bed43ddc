// Package templates holds the gateway's HTML pages, embedded in the binary.
package templates

import (
	"embed"
	"html/template"
)

//go:embed *.html
var files embed.FS

// Parse parses every page; each is looked up by file name.
func Parse() (*template.Template, error) {
	return template.New("").ParseFS(files, "*.html")
}
