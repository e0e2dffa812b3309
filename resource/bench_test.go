package resource_test

import (
	"testing"

	"github.com/finp2p/go-finp2p/resource"
)

// BenchmarkParseID measures parsing a canonical resource id.
func BenchmarkParseID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := resource.ParseID("bank-x:102:9929ccaf-8967-4ba3-9198-a4b8e3128388"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseURI measures parsing the URI form of a resource id.
func BenchmarkParseURI(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := resource.ParseID("finp2p://bank-x/102/9929ccaf-8967-4ba3-9198-a4b8e3128388"); err != nil {
			b.Fatal(err)
		}
	}
}
