package web_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/web"
)

// The station wires the server to its bus and tracker, and adapts its
// record and job pool to Records, History, Accounts, Audit and Control.
func ExampleNew() {
	bus := &jobs.Bus{}
	tracker := jobs.NewTracker(map[int]string{1: "left", 2: "right"})
	bus.Track(tracker)

	srv := web.New(web.Config{
		Tracker:  tracker,
		Bus:      bus,
		Records:  nil, // the station's adapters over db.Store
		History:  nil,
		Accounts: nil,
		Audit:    nil,
		Control:  nil, // the station's adapter over its pool
		Title:    "Bench 1",
	})
	hs := &http.Server{Addr: "127.0.0.1:8080", Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.ListenAndServe(); err != nil && err != http.ErrServerClosed {
			log.Print(err)
		}
	}()

	// At shutdown: stop taking requests, then end the websockets, which
	// Shutdown does not wait for.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(ctx)
	srv.Close()
}
