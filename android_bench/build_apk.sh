#!/usr/bin/env bash
# Build the BlitzMask benchmark APK without Gradle or an Android SDK:
#   javac --release 8 → dx → aapt → zipalign → apksigner (debug key), then `apksigner verify`.
#
#   bash android_bench/build_apk.sh
#   LITERT_AAR=litert.aar[:litert-gpu.aar:…] QNN_AAR=qnn-delegate.aar bash android_bench/build_apk.sh
#
# Tools missing on the host are fetched once from Debian packages (scripts/fetch_debs.sh: bullseye dx and
# android.jar API 23, bookworm aapt/zipalign/apksigner) and unpacked under .cache/android-tools/; the debug
# keystore is cached there too. Needs a JDK (javac, java, keytool) and dpkg.
# Output: $BUILD_DIR/blitzmask-bench.apk (default android_bench/build) and a sidecar blitzmask-bench.apk.json.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
tools="$root/.cache/android-tools"
troot="$tools/root"
build=${BUILD_DIR:-$here/build}
app="$here/app/src/main"
apk_name=blitzmask-bench.apk

die() { echo "build_apk: $*" >&2; exit 1; }
note() { echo "build_apk: $*" >&2; }

for t in javac java keytool; do
  command -v "$t" >/dev/null || die "$t not found: install a JDK (openjdk-17-jdk-headless)"
done

# --- tools: host first, else the Debian packages unpacked under .cache/android-tools/root -----------------
host_jar=/usr/lib/android-sdk/platforms/android-23/android.jar
# Another package also installs a `dx` (OpenDX): only Android's prints "dx version".
host_dx() { command -v dx >/dev/null && dx --version 2>&1 | grep -q "dx version"; }
need_fetch() {
  if [ -z "${ANDROID_JAR:-}" ] && [ ! -f "$host_jar" ] && [ ! -f "$troot/usr/share/java/com.android.android-23.jar" ]; then
    return 0
  fi
  host_dx || [ -f "$troot/usr/share/java/com.android.dx.jar" ] || return 0
  command -v aapt >/dev/null || [ -x "$troot/usr/lib/android-sdk/build-tools/debian/aapt" ] || return 0
  command -v zipalign >/dev/null || [ -x "$troot/usr/lib/android-sdk/build-tools/debian/zipalign" ] || return 0
  command -v apksigner >/dev/null || [ -f "$troot/usr/share/java/apksigner.jar" ] || return 0
  return 1
}

fetch_tools() {
  command -v dpkg >/dev/null || die "dpkg not found: cannot unpack the Debian tool packages"
  local debs="$tools/debs"
  note "fetching Android build tools from Debian into $tools (once)"
  bash "$root/scripts/fetch_debs.sh" bullseye "$debs/bullseye" dalvik-exchange libandroid-23-java >/dev/null
  # aapt/zipalign and the shared libraries they load (host libc/libstdc++ are used as they are).
  bash "$root/scripts/fetch_debs.sh" bookworm "$debs/bookworm" aapt zipalign apksigner libapksig-java \
    android-libaapt android-libandroidfw android-libbacktrace android-libbase android-libcutils android-liblog \
    android-libutils android-libziparchive libprotobuf-lite32 libzopfli1 libpng16-16 libexpat1 p7zip-full \
    >/dev/null
  mkdir -p "$troot"
  for deb in "$debs"/bullseye/*.deb "$debs"/bookworm/*.deb; do
    dpkg -x "$deb" "$troot"
  done
}

mkdir -p "$tools"
exec 9>"$tools/.lock"
flock 9 2>/dev/null || true
if need_fetch; then
  fetch_tools
  need_fetch && die "Android build tools still missing after the fetch (see the messages above)"
fi

bt="$troot/usr/lib/android-sdk/build-tools/debian"
export LD_LIBRARY_PATH="$troot/usr/lib/x86_64-linux-gnu/android:$troot/usr/lib/x86_64-linux-gnu:$troot/lib/x86_64-linux-gnu:$troot/usr/lib:$troot/usr/lib/p7zip${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
android_jar=${ANDROID_JAR:-}
if [ -z "$android_jar" ]; then
  if [ -f "$host_jar" ]; then android_jar=$host_jar; else android_jar="$troot/usr/share/java/com.android.android-23.jar"; fi
fi
if host_dx; then dx=(dx); else dx=(java -jar "$troot/usr/share/java/com.android.dx.jar"); fi
if command -v aapt >/dev/null; then aapt=aapt; else aapt="$bt/aapt"; fi
if command -v zipalign >/dev/null; then zipalign=zipalign; else zipalign="$bt/zipalign"; fi
if command -v apksigner >/dev/null; then apksigner=(apksigner); else
  apksigner=(java -cp "$troot/usr/share/java/apksigner.jar:$troot/usr/share/java/apksig.jar" com.android.apksigner.ApkSignerTool)
fi

# --- debug key -------------------------------------------------------------------------------------------
keystore="$tools/debug.keystore"
if [ ! -f "$keystore" ]; then
  keytool -genkeypair -keystore "$keystore" -storetype PKCS12 -storepass android -keypass android \
    -alias androiddebugkey -keyalg RSA -keysize 2048 -validity 10000 -dname "CN=Android Debug,O=Android,C=US" \
    >/dev/null 2>&1 || die "keytool could not create $keystore"
fi
exec 9>&-  # tools and key ready: concurrent builds (different BUILD_DIRs) may go on

# --- optional runtime AARs: classes.jar (+ libs/*.jar) onto the class path, jni/<abi>/*.so into lib/<abi>/ ----
work="$build/work"
rm -rf "$work"
mkdir -p "$work/classes" "$work/apkroot" "$work/aar"
extra_jars=()
litert_bundled=false
n=0
unpack_aars() {
  local list=$1 aar dir
  IFS=':' read -r -a aars <<<"$list"
  for aar in "${aars[@]}"; do
    [ -n "$aar" ] || continue
    [ -f "$aar" ] || die "AAR not found: $aar"
    n=$((n + 1))
    dir="$work/aar/$n"
    mkdir -p "$dir"
    if command -v unzip >/dev/null; then
      unzip -q -o "$aar" -d "$dir" || die "not a zip/AAR: $aar"
    else
      (cd "$dir" && jar xf "$(cd "$(dirname "$aar")" && pwd)/$(basename "$aar")") || die "not a zip/AAR: $aar"
    fi
    [ -f "$dir/classes.jar" ] && extra_jars+=("$dir/classes.jar")
    if [ -d "$dir/libs" ]; then
      while IFS= read -r jar; do extra_jars+=("$jar"); done < <(find "$dir/libs" -name '*.jar' | sort)
    fi
    if [ -d "$dir/jni" ]; then
      mkdir -p "$work/apkroot/lib"
      cp -R "$dir/jni/." "$work/apkroot/lib/"
    fi
  done
}
if [ -n "${LITERT_AAR:-}" ]; then unpack_aars "$LITERT_AAR"; litert_bundled=true; fi
if [ -n "${QNN_AAR:-}" ]; then unpack_aars "$QNN_AAR"; fi

# --- compile, dex, package, align, sign, verify ------------------------------------------------------------
cp_jars=$(IFS=:; echo "${extra_jars[*]:-}")
javac --release 8 -nowarn -encoding UTF-8 -cp "$android_jar${cp_jars:+:$cp_jars}" -d "$work/classes" \
  "$app"/java/com/blitzmask/bench/*.java

dex_in=("$work/classes" "${extra_jars[@]}")
if ! "${dx[@]}" --dex --output="$work/classes.dex" "${dex_in[@]}" 2>"$work/dx.log"; then
  # Runtime jars that still hold Java 8 lambdas need dex version 038 (Android 8.0+).
  note "dx failed at the default dex version; retrying with --min-sdk-version=26"
  "${dx[@]}" --dex --min-sdk-version=26 --output="$work/classes.dex" "${dex_in[@]}" \
    || { cat "$work/dx.log" >&2; die "dx failed"; }
fi

"$aapt" package -f -M "$app/AndroidManifest.xml" -I "$android_jar" -F "$work/unsigned.apk" "$work/apkroot" >/dev/null
(cd "$work" && "$aapt" add unsigned.apk classes.dex >/dev/null)
"$zipalign" -p -f 4 "$work/unsigned.apk" "$work/aligned.apk"
mkdir -p "$build"
"${apksigner[@]}" sign --ks "$keystore" --ks-pass pass:android --key-pass pass:android \
  --ks-key-alias androiddebugkey --out "$work/signed.apk" "$work/aligned.apk"
"${apksigner[@]}" verify "$work/signed.apk" || die "apksigner verify rejected the APK"
mv -f "$work/signed.apk" "$build/$apk_name"

manifest="$app/AndroidManifest.xml"
package=$(sed -n 's/^[[:space:]]*package="\([^"]*\)".*/\1/p' "$manifest" | head -n1)
version_name=$(sed -n 's/.*android:versionName="\([^"]*\)".*/\1/p' "$manifest" | head -n1)
version_code=$(sed -n 's/.*android:versionCode="\([^"]*\)".*/\1/p' "$manifest" | head -n1)
sha=$(sha256sum "$build/$apk_name" | cut -d' ' -f1)
printf '{"package": "%s", "version_name": "%s", "version_code": %s, "sha256": "%s", "litert_bundled": %s}\n' \
  "$package" "$version_name" "$version_code" "$sha" "$litert_bundled" >"$build/$apk_name.json"
rm -rf "$work"
echo "$build/$apk_name"
