package jobs

import "time"

// Options are a plan's driver options by name, as the recipe writes them
// and checked against the driver's declarations (see DriverOptions) when
// the recipe is compiled.
type Options map[string]string

// duration returns a duration option, or 0 when it is not set (or, in a
// plan built by hand, not a duration).
func (o Options) duration(name string) time.Duration {
	d, err := time.ParseDuration(o[name])
	if err != nil {
		return 0
	}
	return d
}
