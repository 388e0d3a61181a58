package station

import "github.com/unbrick/unbrick/jobs"

var _ jobs.PortChecker = portOf{}

// CheckPort tells the job layer whether the slot's port and adapter still
// work, so that a silence is blamed on the right side (jobs.PortChecker).
func (p portOf) CheckPort() error { return p.Port.Check() }
