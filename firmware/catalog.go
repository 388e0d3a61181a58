package firmware

// Purpose says what an image is for.
type Purpose string

// Purposes.
const (
	Factory  Purpose = "factory"  // the full image a unit leaves the factory with
	App      Purpose = "app"      // the application alone
	Recovery Purpose = "recovery" // a minimal image that brings a unit back to where it can be updated
)

// Valid reports whether p is one of the known purposes.
func (p Purpose) Valid() bool { return p == Factory || p == App || p == Recovery }
