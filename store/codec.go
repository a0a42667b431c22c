package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// encodingZstd names how revisions.objects is compressed. Rendered manifests are
// repetitive text and shrink several times over; zstd decodes faster than gzip, and
// klauspost/compress is already in the module graph through the registry client.
const encodingZstd = "zstd"

// encodingSealed is a zstd frame encrypted with AES-256-GCM (Keyring.seal); objects_key
// names the key. Compression comes first: ciphertext does not compress.
const encodingSealed = "zstd+aes-256-gcm"

// maxObjectsSize bounds what a stored revision may decode to, so a corrupt or hostile
// row cannot make the daemon allocate without limit.
const maxObjectsSize = 1 << 30

// objectCodec compresses revision objects. One encoder and decoder per store: both are
// safe for concurrent EncodeAll/DecodeAll and costly to create. The encoder is asked for
// its lower-memory mode, which sizes its buffers to what it is given rather than to the
// largest window: revision objects are a few KB to a few hundred, and the encoder and the
// decoders (one per core) held 1.65 MB for the daemon's lifetime without it, 1.39 MB with
// it, for the same compressed output (measured on a 460 KB CRD file and on scale-bench
// objects). The decoders' low-memory mode is klauspost/compress's default; it is set here
// so that a change of that default does not undo the saving unseen.
type objectCodec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

func newObjectCodec() (*objectCodec, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxObjectsSize), zstd.WithDecoderLowmem(true))
	if err != nil {
		_ = enc.Close()
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return &objectCodec{enc: enc, dec: dec}, nil
}

func (c *objectCodec) compress(raw []byte) []byte {
	return c.enc.EncodeAll(raw, make([]byte, 0, len(raw)/4+64))
}

// pack compresses raw and, with a keyring, encrypts it bound to the row's identity aad.
// It returns the blob, its encoding and the key id ("" when not encrypted).
func (c *objectCodec) pack(kr *Keyring, raw, aad []byte) (blob []byte, encoding, keyID string, err error) {
	blob = c.compress(raw)
	if kr == nil {
		return blob, encodingZstd, "", nil
	}
	keyID, blob, err = kr.seal(blob, aad)
	if err != nil {
		return nil, "", "", err
	}
	return blob, encodingSealed, keyID, nil
}

// unpack reverses pack.
func (c *objectCodec) unpack(kr *Keyring, encoding, keyID string, blob, aad []byte, size int64) ([]byte, error) {
	switch encoding {
	case encodingZstd:
	case encodingSealed:
		var err error
		if blob, err = kr.open(keyID, blob, aad); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("objects stored with unknown encoding %q", encoding)
	}
	return c.decompress(blob, size)
}

func (c *objectCodec) decompress(blob []byte, size int64) ([]byte, error) {
	if size < 0 || size > maxObjectsSize {
		return nil, fmt.Errorf("objects claim %d bytes, more than the %d allowed", size, maxObjectsSize)
	}
	raw, err := c.dec.DecodeAll(blob, make([]byte, 0, size))
	if err != nil {
		return nil, fmt.Errorf("decompress objects: %w", err)
	}
	if int64(len(raw)) != size {
		return nil, fmt.Errorf("objects decompress to %d bytes, %d were stored", len(raw), size)
	}
	return raw, nil
}

func (c *objectCodec) close() {
	if c == nil {
		return
	}
	_ = c.enc.Close()
	c.dec.Close()
}

func digest(raw []byte) string {
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}
