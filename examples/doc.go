// Package examples holds services built on swimring that users can copy.
package examples
