"""Small hand-written mails for the inbound-mail tests: spam, a newsletter, an Outlook mail, broken MIME.

Shaped after real ones (headers as the big mail services write them), with invented addresses."""

from __future__ import annotations

#: Phishing marked by SpamAssassin, sent with a forged sender, whose multipart boundary is unquoted and
#: holds "=" (as Outlook Express and many spam tools write it).
SPAM_UNQUOTED_BOUNDARY = b"""\
Return-Path: <bounce-7731@mailer.example.net>
Received: from mailer.example.net (unknown [203.0.113.77]) by mx.desk.example; Tue, 14 Nov 2023 03:12:47 +0100
From: "Account Team" <billing@paypa1-secure.example>
To: helpdesk@desk.example
Subject: Your account is suspended
Date: Tue, 14 Nov 2023 03:12:45 +0100
Message-ID: <000d01d9a1b2$4c5d6e70$e5184b50$@paypa1-secure.example>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=----=_NextPart_000_0012_01D9A1B2.4C5D6E70
X-Mailer: Microsoft Outlook Express 6.00.2600.0000
X-Spam-Flag: YES
X-Spam-Status: Yes, score=7.1 required=5.0 tests=HTML_MESSAGE,URIBL_BLOCKED
\tautolearn=no version=3.4.6

This is a multi-part message in MIME format.

------=_NextPart_000_0012_01D9A1B2.4C5D6E70
Content-Type: text/plain; charset="windows-1252"
Content-Transfer-Encoding: quoted-printable

Dear customer, your account has been suspended. Verify your details =
within 24 hours at http://paypa1-secure.example/verify =96 or lose access.

------=_NextPart_000_0012_01D9A1B2.4C5D6E70
Content-Type: text/html; charset="windows-1252"
Content-Transfer-Encoding: quoted-printable

<html><body><p>Dear customer, your account has been <b>suspended</b>.</p>
<p><a href=3D"http://paypa1-secure.example/verify">Verify now</a></p></body></html>

------=_NextPart_000_0012_01D9A1B2.4C5D6E70--
""".replace(b"\n", b"\r\n")


def unquoted_boundary(*, spam: bool, message_id: str = "<nextpart-1@mail.example.org>") -> bytes:
    """The same structure from an ordinary sender (a real user's old mail client), with or without the spam flags."""
    raw = SPAM_UNQUOTED_BOUNDARY.replace(b'"Account Team" <billing@paypa1-secure.example>',
                                         b"Olga Novak <olga@example.org>")
    raw = raw.replace(b"<000d01d9a1b2$4c5d6e70$e5184b50$@paypa1-secure.example>", message_id.encode())
    if not spam:
        raw = raw.replace(b"X-Spam-Flag: YES", b"X-Spam-Flag: NO")
        raw = raw.replace(b"X-Spam-Status: Yes, score=7.1", b"X-Spam-Status: No, score=0.4")
    return raw


#: A vendor newsletter: HTML only, table layout, tracking pixel, image links, list headers, no Precedence.
NEWSLETTER = b"""\
From: "Contoso Cloud" <news@mail.contoso-cloud.example>
To: helpdesk@desk.example
Subject: November update: new VPN client, maintenance windows
Date: Wed, 15 Nov 2023 09:00:00 +0000
Message-ID: <newsletter.2023-11.8842@mail.contoso-cloud.example>
List-Id: Contoso Cloud customers <customers.contoso-cloud.example>
List-Unsubscribe: <https://mail.contoso-cloud.example/u/8842>, <mailto:unsubscribe@mail.contoso-cloud.example>
List-Unsubscribe-Post: List-Unsubscribe=One-Click
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: 8bit

<!DOCTYPE html><html><head><meta charset="utf-8"><title>November update</title>
<style>td { font-family: Arial } .btn { color: #fff }</style></head>
<body style="margin:0;padding:0">
<div style="display:none;max-height:0;overflow:hidden">New VPN client&nbsp;&zwnj;&nbsp;&zwnj;&nbsp;&zwnj;</div>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"><tr><td align="center">
 <table role="presentation" width="600" cellpadding="0" cellspacing="0">
  <tr>
   <td width="300"><a href="https://mail.contoso-cloud.example/c/1"><img src="https://cdn.contoso-cloud.example/logo.png" alt="Contoso"></a></td>
   <td width="300" align="right"><a href="https://mail.contoso-cloud.example/web/8842">View in browser</a></td>
  </tr>
  <tr><td colspan="2">
   <h1>November update</h1>
   <p>Hello,<br>
      the new   <strong>VPN client 5.2</strong> is available for all customers.</p>
   <table class="maintenance" cellpadding="4">
    <tr><th>Region</th><th>Maintenance window</th><th></th></tr>
    <tr><td>Europe</td><td>4 Dec, 22:00&ndash;23:00 UTC</td><td></td></tr>
    <tr><td>Americas</td><td>6 Dec, 03:00&ndash;04:00 UTC</td><td></td></tr>
   </table>
   <p><a class="btn" href="https://mail.contoso-cloud.example/c/2?u=8842">Download the client</a></p>
  </td></tr>
  <tr><td colspan="2" style="font-size:11px">
   <a href="https://mail.contoso-cloud.example/c/3"></a>
   You receive this mail as a Contoso Cloud customer. <a href="https://mail.contoso-cloud.example/u/8842">Unsubscribe</a>
  </td></tr>
 </table>
</td></tr></table>
<img src="https://mail.contoso-cloud.example/open/8842.gif" width="1" height="1" alt="">
</body></html>
"""

#: An Outlook (Word-generated) HTML-only mail from a requester.
OUTLOOK_HTML = """\
<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office"
xmlns:w="urn:schemas-microsoft-com:office:word" xmlns="http://www.w3.org/TR/REC-html40">
<head><meta http-equiv=Content-Type content="text/html; charset=utf-8">
<meta name=Generator content="Microsoft Word 15 (filtered medium)">
<!--[if !mso]><style>v\\:* {behavior:url(#default#VML);}</style><![endif]-->
<style><!--
p.MsoNormal, li.MsoNormal, div.MsoNormal {margin:0cm; font-size:11.0pt; font-family:"Calibri",sans-serif;}
a:link, span.MsoHyperlink {color:#0563C1; text-decoration:underline;}
--></style><!--[if gte mso 9]><xml>
<o:shapedefaults v:ext="edit" spidmax="1026" />
</xml><![endif]-->
</head>
<body lang=EN-GB link="#0563C1" vlink="#954F72" style='word-wrap:break-word'>
<div class=WordSection1>
<p class=MsoNormal>Hi team,<o:p></o:p></p>
<p class=MsoNormal><o:p>&nbsp;</o:p></p>
<p class=MsoNormal>Since this morning&#8217;s update my laptop will not connect to the
<span style='color:red'>Wi-Fi</span> in building&nbsp;B.<o:p></o:p></p>
<p class=MsoNormal>Error code: <b>0x80070005</b>, see
<a href="https://intranet.example.org/kb/wifi">the Wi-Fi page</a>.<o:p></o:p></p>
<p class=MsoNormal><o:p>&nbsp;</o:p></p>
<p class=MsoNormal>Kind regards,<o:p></o:p></p>
<table class=MsoNormalTable border=0 cellspacing=0 cellpadding=0>
<tr><td style='padding:0'><p class=MsoNormal><img width=96 height=32 id="Picture_x0020_1"
src="cid:image001.png@01DA1B2C.3D4E5F60" alt="Logo"><o:p></o:p></p></td>
<td style='padding:0 0 0 8pt'><b>Bob Jones</b> | Finance<br>
<a href="mailto:bob.jones@example.org">bob.jones@example.org</a> | +44 20 7946 0000</td></tr>
</table>
</div></body></html>
"""
