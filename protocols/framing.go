package protocols

import (
	"fmt"
	"io"

	"github.com/libp2p/go-msgio/pbio"
	"google.golang.org/protobuf/proto"
)

// MessageObserver is a stream that wants to see the messages framed on it:
// a node's metrics wrap its streams in one to tell an answer from a refusal
// without every handler saying which it sent.
type MessageObserver interface {
	// MessageRead is called with each message ReadMsg read from the stream.
	MessageRead(proto.Message)
	// MessageWritten is called with each message WriteMsg wrote to it.
	MessageWritten(proto.Message)
}

// ReadMsg reads one varint-delimited protobuf message of at most maxSize bytes.
// A larger message is refused before it is read into memory.
func ReadMsg(r io.Reader, msg proto.Message, maxSize int) error {
	if err := pbio.NewDelimitedReader(r, maxSize).ReadMsg(msg); err != nil {
		return fmt.Errorf("read %s: %w", msg.ProtoReflect().Descriptor().Name(), err)
	}
	if o, ok := r.(MessageObserver); ok {
		o.MessageRead(msg)
	}
	return nil
}

// WriteMsg writes one varint-delimited protobuf message.
func WriteMsg(w io.Writer, msg proto.Message) error {
	if err := pbio.NewDelimitedWriter(w).WriteMsg(msg); err != nil {
		return fmt.Errorf("write %s: %w", msg.ProtoReflect().Descriptor().Name(), err)
	}
	if o, ok := w.(MessageObserver); ok {
		o.MessageWritten(msg)
	}
	return nil
}
