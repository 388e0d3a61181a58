// Package jobs runs the station's work: one job per slot, each an attempt to
// bring one unit to a known-good state with one recipe, on a worker pool.
//
// Every step of a job is published on a Bus as an Event. The Bus never
// blocks a producer; a Tracker folds events into the status of every slot
// for the operator page.
package jobs
