package protocols

import (
	"fmt"
	"io"

	"github.com/libp2p/go-msgio/pbio"
	"google.golang.org/protobuf/proto"
)

// ReadMsg reads one varint-delimited protobuf message of at most maxSize bytes.
// A larger message is refused before it is read into memory.
func ReadMsg(r io.Reader, msg proto.Message, maxSize int) error {
	if err := pbio.NewDelimitedReader(r, maxSize).ReadMsg(msg); err != nil {
		return fmt.Errorf("read %s: %w", msg.ProtoReflect().Descriptor().Name(), err)
	}
	return nil
}

// WriteMsg writes one varint-delimited protobuf message.
func WriteMsg(w io.Writer, msg proto.Message) error {
	if err := pbio.NewDelimitedWriter(w).WriteMsg(msg); err != nil {
		return fmt.Errorf("write %s: %w", msg.ProtoReflect().Descriptor().Name(), err)
	}
	return nil
}
