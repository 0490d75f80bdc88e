package sendfiledhttp_test

import (
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/sendfiled/sendfiled/bindings/go/sendfiled"
	"github.com/sendfiled/sendfiled/bindings/go/sendfiledhttp"
)

// A file server whose bodies the daemon sends. http.FileServer answers
// Range, HEAD and conditional requests itself.
func Example() {
	client, err := sendfiled.Dial("")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ln, err := net.Listen("tcp", ":8080")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir("/srv/www"))}
	log.Fatal(srv.Serve(sendfiledhttp.NewListener(ln, client)))
}

// http.ServeContent with a file opened by the handler.
func Example_serveContent() {
	client, err := sendfiled.Dial("")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	http.HandleFunc("/video", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open("/srv/video.mp4")
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.ServeContent(w, r, "video.mp4", st.ModTime(), f)
	})
	ln, err := net.Listen("tcp", ":8080")
	if err != nil {
		log.Fatal(err)
	}
	// WriteTimeout bounds the daemon's transfers too.
	srv := &http.Server{WriteTimeout: 10 * time.Minute}
	log.Fatal(srv.Serve(sendfiledhttp.NewListener(ln, client)))
}
