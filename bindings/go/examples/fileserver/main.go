// Command fileserver serves a directory over HTTP, with the file bodies sent
// by sendfiled.
//
//	go run ./examples/fileserver -dir /srv/www -addr 127.0.0.1:8080
//
// It uses the daemon at $SENDFILED_SOCKET (else the default socket), and
// serves in-process when the daemon cannot be reached. On SIGINT or SIGTERM
// it finishes the requests in flight and prints what the daemon sent.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/sendfiled/sendfiled/bindings/go/sendfiled"
	"github.com/sendfiled/sendfiled/bindings/go/sendfiledhttp"
)

func main() {
	dir := flag.String("dir", ".", "the directory to serve")
	addr := flag.String("addr", "127.0.0.1:8080", "the address to listen on")
	socket := flag.String("socket", "", "the daemon's socket (default: $SENDFILED_SOCKET, ...)")
	flag.Parse()

	client, err := sendfiled.Dial(*socket)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	sl := sendfiledhttp.NewListener(ln, client)
	srv := &http.Server{Handler: http.FileServer(http.Dir(*dir))}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	log.Printf("serving %s on http://%s through %s", *dir, ln.Addr(), client.Path())
	if err := srv.Serve(sl); err != http.ErrServerClosed {
		log.Fatal(err)
	}
	log.Printf("the daemon sent %d bodies (%d bytes); %d were sent in-process",
		sl.Stats.Offloaded.Load(), sl.Stats.OffloadedBytes.Load(), sl.Stats.Fallbacks.Load())
}
