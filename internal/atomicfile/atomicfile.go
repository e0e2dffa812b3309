// Package atomicfile writes files so that a reader, or a node restarted after a
// crash, sees either the old content or the new content, never a partial file.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrExists is returned by Create when the target file is already there.
var ErrExists = errors.New("file already exists")

// Write replaces path with data: it writes a temporary file in the same
// directory, syncs it, sets perm, renames it over path and syncs the directory.
func Write(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, false)
}

// Create is Write that refuses to replace an existing file, so that keys and
// other one-time material are never overwritten by accident.
func Create(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, true)
}

func write(path string, data []byte, perm os.FileMode, exclusive bool) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: create temporary file: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: set permissions: %w", path, err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: close: %w", path, err)
	}
	if exclusive {
		// A hard link fails if the target exists, which makes the
		// check-and-create atomic where a Stat followed by Rename is not.
		if err = os.Link(tmp.Name(), path); err != nil {
			if errors.Is(err, os.ErrExist) {
				err = fmt.Errorf("write %s: %w", path, ErrExists)
			} else {
				err = fmt.Errorf("write %s: %w", path, err)
			}
			return err
		}
		_ = os.Remove(tmp.Name())
	} else if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: rename into place: %w", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
