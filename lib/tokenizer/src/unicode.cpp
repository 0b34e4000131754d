// UTF-8 helpers, the GPT-2 byte map and NFC (eval.md §7.2).
// sanitize_utf8 follows the Unicode "maximal subpart" practice (one U+FFFD per maximal invalid prefix), which
// is what Rust's String::from_utf8_lossy does. NFC uses ICU's normalizer (libicu) with an ASCII fast path.
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include "internal.h"
#include "ling/core/error.h"

namespace ling {

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) { out.push_back(static_cast<char>(c)); ++i; continue; }
    size_t need = 0;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) { need = 2; lo = 0xA0; }
    else if (c >= 0xE1 && c <= 0xEC) need = 2;
    else if (c == 0xED) { need = 2; hi = 0x9F; }
    else if (c >= 0xEE && c <= 0xEF) need = 2;
    else if (c == 0xF0) { need = 3; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else if (c == 0xF4) { need = 3; hi = 0x8F; }
    if (need == 0) { out += "\xEF\xBF\xBD"; ++i; continue; }
    size_t j = 1;
    for (; j <= need && i + j < n; ++j) {
      unsigned b = p[i + j];
      unsigned l = j == 1 ? lo : 0x80, h = j == 1 ? hi : 0xBF;
      if (b < l || b > h) break;
    }
    if (j == need + 1) {
      out.append(s.data() + i, need + 1);
      i += need + 1;
    } else {
      out += "\xEF\xBF\xBD";
      i += j;  // the maximal valid prefix (at least the lead byte) becomes one replacement
    }
  }
  return out;
}

namespace tok {

ByteMap::ByteMap() {
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    bool keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    uint32_t cp = keep ? static_cast<uint32_t>(b) : static_cast<uint32_t>(next++);
    append_utf8(byte_to_utf8[b], cp);
    cp_to_byte[cp] = static_cast<uint8_t>(b);
  }
}

uint32_t next_cp(std::string_view s, size_t& i) {
  auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) { ++i; return c; }
  int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
  uint32_t cp = c & (len == 4 ? 0x07 : len == 3 ? 0x0F : 0x1F);
  for (int k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += len;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

std::string nfc(std::string_view text, const std::string& source) {
  if (is_ascii(text)) return std::string(text);
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* norm = unorm2_getNFCInstance(&err);
  LING_CHECK(U_SUCCESS(err), source, ": normalizer NFC: ICU unavailable (", u_errorName(err), ")");
  int32_t len16 = 0;
  err = U_ZERO_ERROR;
  u_strFromUTF8(nullptr, 0, &len16, text.data(), static_cast<int32_t>(text.size()), &err);
  std::u16string in(static_cast<size_t>(len16), u'\0');
  err = U_ZERO_ERROR;
  u_strFromUTF8(reinterpret_cast<UChar*>(in.data()), len16, nullptr, text.data(), static_cast<int32_t>(text.size()),
                &err);
  LING_CHECK(U_SUCCESS(err), source, ": normalizer NFC: UTF-8 conversion failed (", u_errorName(err), ")");
  const auto* in16 = reinterpret_cast<const UChar*>(in.data());
  err = U_ZERO_ERROR;
  if (unorm2_isNormalized(norm, in16, len16, &err) && U_SUCCESS(err)) return std::string(text);
  std::u16string out(static_cast<size_t>(len16) * 3 + 16, u'\0');
  err = U_ZERO_ERROR;
  int32_t n = unorm2_normalize(norm, in16, len16, reinterpret_cast<UChar*>(out.data()),
                               static_cast<int32_t>(out.size()), &err);
  LING_CHECK(U_SUCCESS(err), source, ": normalizer NFC failed (", u_errorName(err), ")");
  int32_t len8 = 0;
  err = U_ZERO_ERROR;
  u_strToUTF8(nullptr, 0, &len8, reinterpret_cast<const UChar*>(out.data()), n, &err);
  std::string res(static_cast<size_t>(len8), '\0');
  err = U_ZERO_ERROR;
  u_strToUTF8(res.data(), len8, nullptr, reinterpret_cast<const UChar*>(out.data()), n, &err);
  LING_CHECK(U_SUCCESS(err), source, ": normalizer NFC: UTF-8 conversion failed (", u_errorName(err), ")");
  return res;
}

}  // namespace tok
}  // namespace ling
