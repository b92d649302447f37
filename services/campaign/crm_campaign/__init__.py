"""Campaigns and retention (营销活动与维系): audiences, offers, control groups, contact policy, uplift."""
