package esprom_test

import (
	"slices"
	"testing"

	"github.com/unbrick/unbrick/bootloader/esprom"
)

func TestRateLadder(t *testing.T) {
	tests := []struct {
		want, base int
		ladder     []int
	}{
		{921600, 115200, []int{921600, 460800, 230400}},
		{460800, 115200, []int{460800, 230400}},
		{1500000, 115200, []int{1500000, 921600, 460800, 230400}},
		{500000, 115200, []int{500000, 460800, 230400}},
		{115200, 115200, nil},
		{921600, 460800, []int{921600}},
		{57600, 115200, nil},
	}
	for _, tt := range tests {
		if got := esprom.RateLadder(tt.want, tt.base); !slices.Equal(got, tt.ladder) {
			t.Errorf("RateLadder(%d, %d) = %v, want %v", tt.want, tt.base, got, tt.ladder)
		}
	}
}
