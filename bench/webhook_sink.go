// webhook_sink.go - the receiver of bench/notify.sh: HTTPS on 127.0.0.1, checks each
// webhook's signature as docs/notifications.md says (HMAC-SHA256 of "<t>.<body>", compared in
// constant time), answers 204, and keeps the time from each notice's created_at to its
// arrival. GET /stats answers {"count", "bad", "p50_ms", "p99_ms", "max_ms"} of what arrived
// since the last /stats, and starts again.
//
// usage: webhook_sink CERT KEY SECRET_FILE PORT_FILE
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	raw, err := os.ReadFile(os.Args[3])
	if err != nil {
		panic(err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		key = raw
	}
	var mu sync.Mutex
	var lat []float64
	bad := 0
	verify := func(sig string, body []byte) bool {
		var ts, v1 string
		for _, p := range strings.Split(sig, ",") {
			if strings.HasPrefix(p, "t=") {
				ts = p[2:]
			} else if strings.HasPrefix(p, "v1=") {
				v1 = p[3:]
			}
		}
		t, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || time.Since(time.Unix(t, 0)).Abs() > 5*time.Minute {
			return false
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(ts + "."))
		m.Write(body)
		want := hex.EncodeToString(m.Sum(nil))
		return hmac.Equal([]byte(want), []byte(v1))
	}
	http.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		now := time.Now()
		var doc struct {
			CreatedAt string `json:"created_at"`
		}
		ok := verify(r.Header.Get("Custodia-Signature"), body) && json.Unmarshal(body, &doc) == nil
		created, perr := time.Parse(time.RFC3339Nano, doc.CreatedAt)
		mu.Lock()
		if ok && perr == nil {
			lat = append(lat, float64(now.Sub(created).Microseconds())/1000)
		} else {
			bad++
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	http.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		l, b := lat, bad
		lat, bad = nil, 0
		mu.Unlock()
		sort.Float64s(l)
		q := func(p float64) float64 {
			if len(l) == 0 {
				return 0
			}
			return l[int(p*float64(len(l)-1))]
		}
		fmt.Fprintf(w, `{"count": %d, "bad": %d, "p50_ms": %.1f, "p99_ms": %.1f, "max_ms": %.1f}`,
			len(l), b, q(0.5), q(0.99), q(1))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	os.WriteFile(os.Args[4]+".tmp", []byte(strconv.Itoa(port)), 0o644)
	os.Rename(os.Args[4]+".tmp", os.Args[4])
	cert, err := tls.LoadX509KeyPair(os.Args[1], os.Args[2])
	if err != nil {
		panic(err)
	}
	srv := &http.Server{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	panic(srv.ServeTLS(ln, "", ""))
}
