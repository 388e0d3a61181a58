package station

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"time"
)

// Serve serves the station's page and API at addr and returns the address
// it listens on and a function that stops it.
func (st *Station) Serve(addr, password string) (string, func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/slots", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st.Tracker.Slots())
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	return l.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
