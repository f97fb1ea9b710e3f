package com.blitzmask.bench;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.Closeable;
import java.io.DataInputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * Tensor packs, version 1 (docs/benchmarking.md): the magic {@code \x93BMPACK}, a version byte (1), the number of
 * tensors as a little-endian uint32, then per tensor its name's length as a little-endian uint16, the name (ASCII:
 * letters, digits and {@code ._-}, at most 200, not starting with {@code .} or {@code -}) and one .npy version-1.0
 * file ({@link Npy}). Accuracy mode reads its inputs from one pack and writes its outputs into another, each as one
 * stream (plain Java).
 */
public final class Pack {
    static final byte[] MAGIC = {(byte) 0x93, 'B', 'M', 'P', 'A', 'C', 'K'};
    static final int VERSION = 1;
    static final int MAX_NAME = 200;
    private static final int BUFFER = 1 << 16;

    private Pack() {}

    /** One tensor of a pack and its name. */
    public static final class Entry {
        public final String name;
        public final Npy.Array array;

        Entry(String name, Npy.Array array) {
            this.name = name;
            this.array = array;
        }
    }

    /** Reads a pack front to back: {@link #count} from its header, then {@link #next()} per tensor. */
    public static final class Reader implements Closeable {
        public final int count;
        private final String file;
        private final DataInputStream in;
        private int done;

        /** Open a pack and read its header; IOException naming the file when it is not a version-1 pack. */
        public Reader(File file) throws IOException {
            this.file = file.getName();
            in = new DataInputStream(new BufferedInputStream(new FileInputStream(file), BUFFER));
            try {
                byte[] header = new byte[MAGIC.length + 5];
                if (Npy.readUpTo(in, header) < header.length
                        || !Arrays.equals(Arrays.copyOf(header, MAGIC.length), MAGIC)) {
                    throw new IOException(this.file + ": not a tensor pack");
                }
                if (header[MAGIC.length] != VERSION) {
                    throw new IOException(this.file + ": tensor pack version " + (header[MAGIC.length] & 0xff)
                            + ", this app reads " + VERSION);
                }
                long n = (header[8] & 0xffL) | (header[9] & 0xffL) << 8 | (header[10] & 0xffL) << 16
                        | (header[11] & 0xffL) << 24;
                if (n > Integer.MAX_VALUE) {
                    throw new IOException(this.file + ": " + n + " tensors");
                }
                count = (int) n;
            } catch (IOException e) {
                in.close();
                throw e;
            }
        }

        /** The next tensor, null after the last; IOException naming the file and the record when it is broken. */
        public Entry next() throws IOException {
            if (done == count) {
                if (in.read() >= 0) {
                    throw new IOException(file + ": bytes after its " + count + " records");
                }
                return null;
            }
            String where = file + ": record " + done;
            byte[] size = new byte[2];
            byte[] name = new byte[Npy.readUpTo(in, size) == 2 ? (size[0] & 0xff) | (size[1] & 0xff) << 8 : 0];
            if (name.length == 0 || Npy.readUpTo(in, name) < name.length || !validName(name)) {
                throw new IOException(where + ": truncated, or a bad tensor name");
            }
            String text = new String(name, "US-ASCII");
            try {
                Npy.Array array = Npy.read(in);
                done++;
                return new Entry(text, array);
            } catch (IOException e) {
                throw new IOException(where + " (" + text + "): " + e.getMessage());
            }
        }

        @Override
        public void close() throws IOException {
            in.close();
        }
    }

    /** Writes a pack of a known number of tensors as one stream. */
    public static final class Writer implements Closeable {
        private final int count;
        private final OutputStream out;
        private int written;

        public Writer(File file, int count) throws IOException {
            this.count = count;
            out = new BufferedOutputStream(new FileOutputStream(file), BUFFER);
            byte[] header = Arrays.copyOf(MAGIC, MAGIC.length + 5);
            header[MAGIC.length] = VERSION;
            for (int i = 0; i < 4; i++) {
                header[MAGIC.length + 1 + i] = (byte) (count >>> (8 * i));
            }
            out.write(header);
        }

        /** Append one tensor (its remaining bytes: little-endian, C order). */
        public void add(String name, String dtype, int[] shape, ByteBuffer data) throws IOException {
            byte[] text = name.getBytes("US-ASCII");
            if (!validName(text)) {
                throw new IOException("tensor name '" + name + "': use letters, digits and '._-' (at most "
                        + MAX_NAME + ")");
            }
            if (written == count) {
                throw new IOException("more than the " + count + " tensors the pack was opened for");
            }
            out.write(new byte[] {(byte) text.length, (byte) (text.length >>> 8)});
            out.write(text);
            Npy.write(out, dtype, shape, data);
            written++;
        }

        /** Flush the last bytes; IOException unless exactly the announced number of tensors was added. */
        public void finish() throws IOException {
            out.flush();
            if (written != count) {
                throw new IOException(written + " tensors written, the pack was opened for " + count);
            }
        }

        @Override
        public void close() throws IOException {
            out.close();
        }
    }

    /** Letters, digits and '._-', 1 to MAX_NAME characters, not starting with '.' or '-'. */
    static boolean validName(byte[] name) {
        if (name.length == 0 || name.length > MAX_NAME || name[0] == '.' || name[0] == '-') {
            return false;
        }
        for (byte c : name) {
            boolean ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.'
                    || c == '_' || c == '-';
            if (!ok) {
                return false;
            }
        }
        return true;
    }
}
