# Optional CDN in front of the renditions bucket. The bucket stays private: CloudFront signs
# its requests with Origin Access Control and the bucket policy (s3_policies.tf) allows only
# this distribution, only rendition keys.

data "aws_cloudfront_cache_policy" "caching_optimized" {
  name = "Managed-CachingOptimized"
}

data "aws_cloudfront_response_headers_policy" "security_headers" {
  name = "Managed-SecurityHeadersPolicy"
}

resource "aws_cloudfront_origin_access_control" "this" {
  count = var.enable_cdn ? 1 : 0

  name                              = "${local.name}-renditions"
  description                       = "picforge renditions bucket"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

resource "aws_cloudfront_distribution" "this" {
  #checkov:skip=CKV_AWS_68: renditions are public, cacheable images; a web ACL adds cost without protecting anything private.
  #checkov:skip=CKV2_AWS_47: no web ACL (see CKV_AWS_68), so no Log4j rule set to attach; the origin is S3, which runs no Java.
  #checkov:skip=CKV_AWS_86: standard logging needs an ACL-enabled bucket and all our buckets enforce BucketOwnerEnforced (ACLs off); CloudFront's own reports cover traffic.
  #checkov:skip=CKV_AWS_174: the default *.cloudfront.net certificate is used, for which CloudFront fixes the TLS policy; set a custom domain + ACM cert to choose TLSv1.2_2021.
  #checkov:skip=CKV2_AWS_42: same as CKV_AWS_174: no custom domain by default, so no custom certificate.
  #checkov:skip=CKV_AWS_305: the distribution serves objects by key only; there is no index document to default to.
  #checkov:skip=CKV_AWS_310: one origin: renditions live in one bucket; an outage falls back to the API's pre-signed URLs by turning enable_cdn off.
  #checkov:skip=CKV_AWS_374: images are served worldwide by design; no geo restriction.
  count = var.enable_cdn ? 1 : 0

  enabled         = true
  is_ipv6_enabled = true
  comment         = "${local.name} renditions"
  # NOTE: North America + Europe edge locations only: cheapest price class.
  price_class = "PriceClass_100"

  origin {
    origin_id                = "renditions"
    domain_name              = aws_s3_bucket.renditions.bucket_regional_domain_name
    origin_access_control_id = aws_cloudfront_origin_access_control.this[0].id
  }

  default_cache_behavior {
    target_origin_id           = "renditions"
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = data.aws_cloudfront_cache_policy.caching_optimized.id
    response_headers_policy_id = data.aws_cloudfront_response_headers_policy.security_headers.id
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = true
  }
}
