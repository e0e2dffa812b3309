package protocols

import (
	"bytes"
	"testing"

	"github.com/finp2p/go-finp2p/protocols/pb"
)

func TestFramingRoundTripAndLimit(t *testing.T) {
	var buf bytes.Buffer
	in := &pb.Hello{Network: "net", Chain: [][]byte{bytes.Repeat([]byte{7}, 4096)}}
	if err := WriteMsg(&buf, in); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()

	var out pb.Hello
	if err := ReadMsg(bytes.NewReader(raw), &out, MaxHelloSize); err != nil {
		t.Fatal(err)
	}
	if out.Network != "net" || len(out.Chain) != 1 || len(out.Chain[0]) != 4096 {
		t.Fatalf("round trip changed the message: %+v", &out)
	}

	if err := ReadMsg(bytes.NewReader(raw), &out, 1024); err == nil {
		t.Fatal("a message over the size limit was accepted")
	}
}

func FuzzReadHello(f *testing.F) {
	var buf bytes.Buffer
	_ = WriteMsg(&buf, &pb.Hello{Network: "n", Chain: [][]byte{{1, 2, 3}}})
	f.Add(buf.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		var h pb.Hello
		_ = ReadMsg(bytes.NewReader(data), &h, MaxHelloSize)
	})
}
