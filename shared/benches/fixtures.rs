//! The header set the parse + select bench and the callgrind example both use: a Chrome on
//! Android image request, eight headers as Envoy passes them.
pub const CHROME_ANDROID: [(&[u8], &[u8]); 8] = [
    (b":authority", b"shop.example.com"),
    (b":path", b"/img/hero.jpg"),
    (b"user-agent", b"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"),
    (b"accept", b"image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"),
    (b"accept-encoding", b"gzip, deflate, br, zstd"),
    (b"accept-language", b"en-US,en;q=0.9"),
    (b"sec-ch-ua-mobile", b"?1"),
    (b"referer", b"https://shop.example.com/"),
];
