// Command swimring runs swimring nodes and administers running clusters.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "swimring: the demo cluster arrives with the kv example")
	os.Exit(2)
}
