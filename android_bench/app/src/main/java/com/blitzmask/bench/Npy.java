package com.blitzmask.bench;

import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Tensors in NumPy's {@code .npy} format, version 1.0: little-endian, C order, of the LiteRT dtypes FLOAT32,
 * FLOAT16, INT8, UINT8 and INT32, read from and written to streams (the records of a {@link Pack}) byte for byte as
 * {@code numpy.save} writes them (plain Java).
 */
public final class Npy {
    /** LiteRT DataType names this class reads and writes, and their npy descriptors and item sizes. */
    public static final List<String> DTYPES = Arrays.asList("FLOAT32", "FLOAT16", "INT8", "UINT8", "INT32");
    private static final List<String> DESCRS = Arrays.asList("<f4", "<f2", "|i1", "|u1", "<i4");
    private static final int[] SIZES = {4, 2, 1, 1, 4};

    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    private static final int PREFIX = 10;  // magic, version, header length
    private static final int ALIGN = 64;
    private static final int GROWTH_DIGITS = 21;  // numpy pads room for the first dimension to grow in place
    private static final Pattern DESCR = Pattern.compile("'descr'\\s*:\\s*'([^']*)'");
    private static final Pattern FORTRAN = Pattern.compile("'fortran_order'\\s*:\\s*(True|False)");
    private static final Pattern SHAPE = Pattern.compile("'shape'\\s*:\\s*\\(([^)]*)\\)");

    private Npy() {}

    /** One tensor: LiteRT dtype name, shape, and its bytes (little-endian, C order, position 0). */
    public static final class Array {
        public final String dtype;
        public final int[] shape;
        public final ByteBuffer data;

        Array(String dtype, int[] shape, ByteBuffer data) {
            this.dtype = dtype;
            this.shape = shape;
            this.data = data;
        }
    }

    /** Whether {@code dtype} (a LiteRT DataType name) can be read and written. */
    public static boolean supports(String dtype) {
        return DTYPES.contains(dtype);
    }

    /** "int8 (1, 64, 64, 3)": a dtype and shape the way NumPy users read them. */
    public static String describe(String dtype, int[] shape) {
        return dtype.toLowerCase(Locale.ROOT) + " " + shapeRepr(shape);
    }

    /**
     * Read one .npy record from a stream, exactly its bytes; IOException with a one-line reason when it is not a
     * version-1.0 file of a known dtype (or the stream ends inside it).
     */
    public static Array read(DataInputStream in) throws IOException {
        byte[] prefix = new byte[PREFIX];
        int got = readUpTo(in, prefix);
        if (got < MAGIC.length || !Arrays.equals(Arrays.copyOf(prefix, MAGIC.length), MAGIC)) {
            throw new IOException("not a .npy file");
        }
        if (prefix[6] != 1 || prefix[7] != 0) {
            throw new IOException(".npy version " + (prefix[6] & 0xff) + "." + (prefix[7] & 0xff)
                    + " is not supported (1.0 only)");
        }
        if (got < PREFIX) {
            throw new IOException("truncated .npy header");
        }
        byte[] text = new byte[(prefix[8] & 0xff) | ((prefix[9] & 0xff) << 8)];
        if (readUpTo(in, text) < text.length) {
            throw new IOException("truncated .npy header");
        }
        String header = new String(text, "ISO-8859-1");
        String descr = field(header, DESCR, "descr");
        if (descr.length() == 3 && descr.charAt(0) == '<' && descr.charAt(2) == '1') {
            descr = "|" + descr.substring(1);  // one-byte types have no byte order
        }
        int kind = DESCRS.indexOf(descr);
        if (kind < 0) {
            throw new IOException("dtype '" + descr + "' is not supported (little-endian float32, float16, int8, "
                    + "uint8 or int32)");
        }
        if (field(header, FORTRAN, "fortran_order").equals("True")) {
            throw new IOException("Fortran-order arrays are not supported (save in C order)");
        }
        int[] shape = parseShape(field(header, SHAPE, "shape"));
        long expected = elements(shape) * SIZES[kind];
        if (expected > Integer.MAX_VALUE - 8) {
            throw new IOException("tensor too large: " + describe(DTYPES.get(kind), shape));
        }
        byte[] data = new byte[(int) expected];
        int have = readUpTo(in, data);
        if (have != expected) {
            throw new IOException("holds " + have + " data bytes; its header says " + expected);
        }
        return new Array(DTYPES.get(kind), shape, ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN));
    }

    /** Parse the bytes of one whole .npy file (no bytes after its data). */
    static Array parse(byte[] b) throws IOException {
        DataInputStream in = new DataInputStream(new ByteArrayInputStream(b));
        Array array = read(in);
        int extra = in.available();
        if (extra > 0) {
            throw new IOException("holds " + (array.data.remaining() + extra) + " data bytes; its header says "
                    + array.data.remaining());
        }
        return array;
    }

    /**
     * Write {@code data} (its remaining bytes: little-endian, C order) as one .npy file, byte for byte what
     * numpy.save writes.
     */
    public static void write(OutputStream out, String dtype, int[] shape, ByteBuffer data) throws IOException {
        int kind = DTYPES.indexOf(dtype);
        if (kind < 0) {
            throw new IOException("dtype " + dtype + " cannot be written as .npy");
        }
        long expected = elements(shape) * SIZES[kind];
        if (data.remaining() != expected) {
            throw new IOException(data.remaining() + " bytes for " + describe(dtype, shape) + " (" + expected + ")");
        }
        out.write(header(DESCRS.get(kind), shape));
        ByteBuffer body = data.duplicate();
        if (body.hasArray()) {
            out.write(body.array(), body.arrayOffset() + body.position(), body.remaining());
            return;
        }
        byte[] chunk = new byte[Math.min(body.remaining(), 1 << 16)];
        while (body.hasRemaining()) {
            int n = Math.min(chunk.length, body.remaining());
            body.get(chunk, 0, n);
            out.write(chunk, 0, n);
        }
    }

    /** Fill {@code buffer} from {@code in} → how many bytes it got (fewer only at the end of the stream). */
    static int readUpTo(InputStream in, byte[] buffer) throws IOException {
        int got = 0;
        while (got < buffer.length) {
            int n = in.read(buffer, got, buffer.length - got);
            if (n < 0) {
                break;
            }
            got += n;
        }
        return got;
    }

    /** The magic, version, length and header dict exactly as numpy.save writes them. */
    static byte[] header(String descr, int[] shape) throws IOException {
        StringBuilder h = new StringBuilder("{'descr': '").append(descr).append("', 'fortran_order': False, 'shape': ")
                .append(shapeRepr(shape)).append(", }");
        if (shape.length > 0) {
            pad(h, GROWTH_DIGITS - String.valueOf(shape[0]).length());
        }
        pad(h, ALIGN - (PREFIX + h.length() + 1) % ALIGN);
        h.append('\n');
        byte[] text = h.toString().getBytes("ISO-8859-1");
        byte[] out = new byte[PREFIX + text.length];
        System.arraycopy(MAGIC, 0, out, 0, MAGIC.length);
        out[6] = 1;
        out[7] = 0;
        out[8] = (byte) (text.length & 0xff);
        out[9] = (byte) (text.length >>> 8);
        System.arraycopy(text, 0, out, PREFIX, text.length);
        return out;
    }

    /** A Python tuple: "()", "(3,)", "(1, 64, 64, 3)". */
    static String shapeRepr(int[] shape) {
        StringBuilder s = new StringBuilder("(");
        for (int i = 0; i < shape.length; i++) {
            s.append(i > 0 ? ", " : "").append(shape[i]);
        }
        return s.append(shape.length == 1 ? ",)" : ")").toString();
    }

    private static void pad(StringBuilder s, int spaces) {
        for (int i = 0; i < spaces; i++) {
            s.append(' ');
        }
    }

    private static String field(String header, Pattern pattern, String key) throws IOException {
        Matcher m = pattern.matcher(header);
        if (!m.find()) {
            throw new IOException(".npy header without a valid '" + key + "'");
        }
        return m.group(1).trim();
    }

    private static int[] parseShape(String text) throws IOException {
        String[] parts = text.split(",");
        int n = 0;
        int[] shape = new int[parts.length];
        for (String p : parts) {
            if (p.trim().isEmpty()) {
                continue;
            }
            try {
                shape[n] = Integer.parseInt(p.trim());
            } catch (NumberFormatException e) {
                throw new IOException("bad .npy shape (" + text + ")");
            }
            if (shape[n++] < 0) {
                throw new IOException("bad .npy shape (" + text + ")");
            }
        }
        return Arrays.copyOf(shape, n);
    }

    private static long elements(int[] shape) throws IOException {
        long n = 1;
        for (int d : shape) {
            n *= d;
            if (n > Integer.MAX_VALUE) {
                throw new IOException("tensor too large: " + shapeRepr(shape));
            }
        }
        return n;
    }
}
