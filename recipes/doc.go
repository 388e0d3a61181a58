// Package recipes reads recipe files: the bench's recovery playbook for one
// board and hardware revision. A recipe says which units it matches, how to
// put them in their ROM bootloader, which images are right for them, the
// strategies to try in order, which regions no step may touch, what the
// console says when the unit is healthy and when it is not.
//
// Recipe files are YAML 1.2 (https://yaml.org/spec/1.2.2/) read strictly:
// an unknown key, a value of the wrong type, an unknown step, a bad regular
// expression, overlapping protected regions, a step that would touch a
// protected region or fall outside the part's flash, a missing image, an
// image whose hash or minisign signature does not match: each is an error
// naming file:line:col with a hint. Check returns every error, not only the
// first. Driver options are kept as text with their places: the protocol's
// driver declares which it takes, with their types and ranges, and checks
// them (jobs.CheckOptions; station.CheckRecipes runs both). Steps use the
// vocabulary of package step. testdata/recipes in the module holds an
// example for every family.
package recipes
