package web

import "embed"

// assetFS holds the pages, scripts and styles, so that the station is one
// binary.
//
//go:embed assets
var assetFS embed.FS
