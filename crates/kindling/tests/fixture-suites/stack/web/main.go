// Command web serves its build's version at /version: the reuse tests
// change the constant and check the pod serves the new build.
package main

import (
	"fmt"
	"net/http"
	"os"
)

const version = "v1"

func main() {
	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	http.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, version) })
	fmt.Println("web", version, "serving on :8080")
	if err := http.ListenAndServe(":8080", nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
