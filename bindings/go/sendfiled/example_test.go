package sendfiled_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/sendfiled/sendfiled/bindings/go/sendfiled"
)

// Send a whole file to a TCP peer through the daemon at the default socket.
func ExampleClient_SendFile() {
	client, err := sendfiled.Dial("") // $SENDFILED_SOCKET, ...
	if err != nil {
		log.Fatal(err) // errors.Is(err, sendfiled.ErrUnavailable)
	}
	defer client.Close()

	conn, err := net.Dial("tcp", "example.com:80")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	f, err := os.Open("/var/www/index.html")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	res, err := client.SendFile(context.Background(), conn.(*net.TCPConn), f, 0, 0, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("sent %d bytes with %v\n", res.BytesSent, res.Method)
}

// A range, without the user-space fallback, bounded in time; and what each
// kind of failure looks like.
func ExampleClient_SendFile_errors() {
	client, err := sendfiled.Dial("")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	conn, err := net.Dial("tcp", "example.com:80")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := client.SendFile(ctx, conn.(*net.TCPConn), f, 4096, 1<<20,
		&sendfiled.Options{NoFallback: true})
	switch {
	case err == nil:
		fmt.Printf("sent %d bytes; the file position is now %d\n", res.BytesSent, res.FinalOffset)
	case errors.Is(err, sendfiled.ErrNotAvailable):
		fmt.Println("no zero-copy method for this file; nothing was sent")
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Printf("cancelled at the deadline after %d bytes\n", res.BytesSent)
	case errors.Is(err, sendfiled.ErrPeerClosed), errors.Is(err, syscall.ECONNRESET):
		fmt.Printf("the peer went away after %d bytes\n", res.BytesSent)
	default:
		var se *sendfiled.Error
		if errors.As(err, &se) {
			fmt.Println(se.Result.Status, se.Result.Errno)
		}
		log.Fatal(err)
	}
}

// Many goroutines may share one client: each request waits for its own
// reply.
func ExampleClient_concurrent() {
	client, err := sendfiled.Dial("")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:8000")
	if err != nil {
		log.Fatal(err)
	}
	for {
		conn, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func(conn *net.TCPConn) {
			defer conn.Close()
			f, err := os.Open("/srv/motd")
			if err != nil {
				return
			}
			defer f.Close()
			if _, err := client.SendFile(context.Background(), conn, f, 0, 0, nil); err != nil {
				log.Print(err)
			}
		}(conn.(*net.TCPConn))
	}
}
