package sendfiledhttp_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sendfiled/sendfiled/bindings/go/internal/testdaemon"
	"github.com/sendfiled/sendfiled/bindings/go/sendfiled"
	"github.com/sendfiled/sendfiled/bindings/go/sendfiledhttp"
)

func selfSigned(t *testing.T) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Under TLS, the daemon is never asked: it would send plaintext.
func TestTLSNeverOffloads(t *testing.T) {
	checkLeaks(t)
	d := testdaemon.Start(t)
	c, err := sendfiled.Dial(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, 3<<20)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := sendfiledhttp.NewListener(l, c)
	tl := tls.NewListener(sl, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, path)
	})}
	done := make(chan struct{})
	go func() {
		srv.Serve(tl)
		close(done)
	}()
	defer func() {
		srv.Close()
		<-done
	}()
	before := d.Stats(t)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + l.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || n != int64(len(data)) || [32]byte(h.Sum(nil)) != sha256.Sum256(data) {
		t.Fatalf("over TLS: %d bytes, %v", n, err)
	}
	if after := d.Stats(t); after.Requests != before.Requests || sl.Stats.Offloaded.Load() != 0 {
		t.Errorf("the daemon got %d requests for a TLS connection", after.Requests-before.Requests)
	}
}
