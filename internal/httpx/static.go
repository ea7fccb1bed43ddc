package httpx

import (
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// StaticFiles serves the files of fsys and nothing else: a directory (or a path ending in "/")
// is a 404, where http.FileServer would list its contents.
func StaticFiles(fsys fs.FS) http.Handler {
	files := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" || strings.HasSuffix(r.URL.Path, "/") {
			WriteError(w, r, http.StatusNotFound, "not_found", "no such file")
			return
		}
		if st, err := fs.Stat(fsys, name); err != nil || st.IsDir() {
			WriteError(w, r, http.StatusNotFound, "not_found", "no such file")
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}
