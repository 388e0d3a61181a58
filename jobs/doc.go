// Package jobs runs the station's work: one job per slot, each an attempt to
// bring one unit to a known-good state with one recipe, on a worker pool.
//
// A job is a strategy with named unit states (package step: off,
// bootloader, application) changed by named transitions (unit.go: enter,
// boot, reset, boot fallback slot, power off). Each step kind's row in
// step.Table says which states it may run in; steps.go holds each kind's
// code. Before the unit is touched, preflight.go refuses what cannot work;
// observe.go reads why a unit is bricked and validates it after recovery;
// runner.go holds the lifecycle, retries and time limits; result.go the
// record's types. Drivers (driver_*.go) speak one protocol each and declare
// their options (options_*.go), checked when a recipe is compiled.
//
// Every step of a job is published on a Bus as an Event. The Bus never
// blocks a producer; a Tracker folds events into the status of every slot
// for the operator page. The Pool decides slot health (quarantine) and
// publishes each job's end once, with the hint its placement hook decides.
package jobs
